#!/usr/bin/env bash
# Real target servers for Gatehouse's end-to-end tests: PostgreSQL 15, MariaDB, OpenSSH and nginx on loopback.
#
#   test/services.sh install            apt-get the Debian packages that are missing (root; else prints the command)
#   test/services.sh up [--holder PID]  start everything (reuses servers that are already up: ~0.1 s, cold ~2 s)
#   test/services.sh down [--holder PID] stop everything; with --holder, only when no other live holder remains
#   test/services.sh env                print the connection facts as KEY=VALUE (what tests read, see docs/testing.md)
#   test/services.sh status             exit 0 when all four servers answer
#
# Several test runs may share one machine (engineers in one tree, CI), so `up`/`down` are serialised by a lock
# and `down --holder` is reference-counted: one run's teardown must not pull the servers from under another's.
set -euo pipefail

S=${GH_TEST_SERVICES_DIR:-/tmp/gatehouse-test-services}
LOCK="$S.lock" # outside $S: a cold `up` wipes $S
PG_PORT=${GH_TEST_PG_PORT:-24432}
MY_PORT=${GH_TEST_MY_PORT:-24306}
SSH_PORT=${GH_TEST_SSH_PORT:-24022}
HTTP_PORT=${GH_TEST_HTTP_PORT:-24080}
PG_BIN=/usr/lib/postgresql/15/bin
AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --clear-groups --)

log() { echo "services: $*" >&2; }
die() {
  log "$*"
  exit 1
}

missing_packages() {
  local need=()
  [ -x "$PG_BIN/postgres" ] || need+=(postgresql-15)
  [ -x "$PG_BIN/psql" ] || need+=(postgresql-client-15)
  [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
  command -v mariadb >/dev/null || need+=(mariadb-client)
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  command -v ssh-agent >/dev/null || need+=(openssh-client) # -A forwarding tests
  command -v openssl >/dev/null || need+=(openssl)          # the TLS target's CA and certificates
  command -v ip >/dev/null || need+=(iproute2)              # a non-loopback client address
  command -v curl >/dev/null || need+=(curl)                # the HTTP e2e tests drive curl
  echo "${need[@]}"
}

cmd_install() {
  local need
  need=$(missing_packages)
  [ -z "$need" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages; run:"
    echo "sudo apt-get install -y --no-install-recommends $need"
    exit 1
  fi
  log "installing: $need"
  # The packages' postinst would start system-wide daemons on :5432/:3306/:22; we run our own instead.
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  # apt lists may be missing on a fresh machine; refresh only if the first attempt cannot find a package
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  }
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  need=$(missing_packages)
  [ -z "$need" ] || die "still missing after apt-get: $need"
}

wait_until() { # wait_until DESCRIPTION CMD...: poll for up to 10 s
  local what=$1
  shift
  for _ in $(seq 1 200); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "$what did not come up (logs in $S)"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Daemons are re-parented to pid 1, which may reap them late: a zombie counts as gone.
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${st:0:1}" != Z ]; }
pid_alive() { [ -f "$1" ] && running "$(cat "$1")"; }
pg_ready() { "${AS_POSTGRES[@]}" "$PG_BIN/pg_ctl" -D "$S/pg/data" status >/dev/null 2>&1 && tcp_open "$PG_PORT"; }
my_ready() { pid_alive "$S/my/pid" && mariadb-admin --no-defaults -S "$S/my/sock" -uroot ping >/dev/null 2>&1; }
ssh_ready() { pid_alive "$S/ssh/sshd.pid" && tcp_open "$SSH_PORT"; }
http_ready() { pid_alive "$S/nginx/nginx.pid" && tcp_open "$HTTP_PORT"; }
core_ready() { [ -f "$S/ready" ] && pg_ready && my_ready && ssh_ready; }
all_ready() { core_ready && http_ready; }

start_postgres() {
  mkdir -p "$S/pg/data" "$S/pg/sock"
  chown -R postgres:postgres "$S/pg"
  "${AS_POSTGRES[@]}" "$PG_BIN/initdb" -D "$S/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  # One line per auth method the gateway must speak to a target.
  printf '%s\n' 'local all all trust' \
    'host all trustuser 127.0.0.1/32 trust' \
    'host all md5user 127.0.0.1/32 md5' \
    'host all all 127.0.0.1/32 scram-sha-256' >"$S/pg/data/pg_hba.conf"
  # log_statement=all: e2e tests compare what really reached the target with the gateway's audit log.
  # Durability is off because the data is throwaway; the speed matters for test time.
  "${AS_POSTGRES[@]}" "$PG_BIN/pg_ctl" -D "$S/pg/data" -l "$S/pg/postgres.log" -w -s -o \
    "-p $PG_PORT -k $S/pg/sock -c listen_addresses=127.0.0.1 -c max_connections=200 \
     -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
     -c log_statement=all -c log_connections=on -c log_line_prefix='%m [%p] %u@%d '" start 9>&-
  "$PG_BIN/psql" -qX -v ON_ERROR_STOP=1 -h "$S/pg/sock" -p "$PG_PORT" -U postgres -d postgres <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE scramuser LOGIN PASSWORD 'scrampw';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5pw';
CREATE ROLE trustuser LOGIN;
CREATE DATABASE appdb OWNER scramuser;
GRANT ALL ON DATABASE appdb TO md5user, trustuser;
\c appdb
GRANT ALL ON SCHEMA public TO md5user, trustuser;
SQL
}

start_mariadb() {
  mkdir -p "$S/my/data" "$S/my/tmp"
  chown -R mysql:mysql "$S/my"
  # mariadbd switches to user=mysql itself. The general log plays the role of PostgreSQL's log_statement.
  printf '%s\n' '[mariadbd]' user=mysql "datadir=$S/my/data" "tmpdir=$S/my/tmp" "socket=$S/my/sock" \
    "pid-file=$S/my/pid" "port=$MY_PORT" bind-address=127.0.0.1 skip-name-resolve "log-error=$S/my/error.log" \
    general-log=1 "general-log-file=$S/my/general.log" innodb_buffer_pool_size=64M innodb_log_file_size=16M \
    innodb_flush_log_at_trx_commit=0 innodb_doublewrite=0 skip-log-bin plugin-load-add=auth_ed25519 >"$S/my/my.cnf"
  mariadb-install-db --defaults-file="$S/my/my.cnf" --auth-root-authentication-method=socket --skip-test-db \
    >"$S/my/install.log" 2>&1 || die "mariadb-install-db failed, see $S/my/install.log"
  setsid mariadbd --defaults-file="$S/my/my.cnf" --innodb-fast-shutdown=2 </dev/null >>"$S/my/stdout.log" 2>&1 9>&- &
  wait_until MariaDB my_ready
  mariadb --no-defaults -S "$S/my/sock" -uroot <<'SQL'
CREATE DATABASE appdb;
CREATE USER 'nativeuser'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('nativepw');
CREATE USER 'eduser'@'127.0.0.1' IDENTIFIED VIA ed25519 USING PASSWORD('edpw');
GRANT ALL ON appdb.* TO 'nativeuser'@'127.0.0.1', 'eduser'@'127.0.0.1';
SQL
}

start_sshd() {
  local d="$S/ssh"
  mkdir -p "$d"
  id sshtest >/dev/null 2>&1 || useradd -m -s /bin/bash sshtest
  echo 'sshtest:sshtestpw' | chpasswd # also unlocks the account, which UsePAM=no otherwise refuses
  install -d -m 755 /run/sshd
  ssh-keygen -q -t ed25519 -N '' -C gatehouse-test-host -f "$d/host_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C gatehouse-test-client -f "$d/client_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C gatehouse-test-user-ca -f "$d/user_ca"
  # A key that only works through its certificate, so a test can prove certificate auth really happened.
  ssh-keygen -q -t ed25519 -N '' -C gatehouse-test-cert -f "$d/cert_ed25519"
  ssh-keygen -q -s "$d/user_ca" -I gatehouse-test -n sshtest -V -5m:+3650d "$d/cert_ed25519.pub"
  install -d -m 700 -o sshtest -g sshtest ~sshtest/.ssh
  install -m 600 -o sshtest -g sshtest "$d/client_ed25519.pub" ~sshtest/.ssh/authorized_keys
  printf '%s\n' "Port $SSH_PORT" 'ListenAddress 127.0.0.1' "HostKey $d/host_ed25519" "PidFile $d/sshd.pid" \
    'UsePAM no' 'PasswordAuthentication yes' 'KbdInteractiveAuthentication no' 'PermitRootLogin no' \
    'AllowUsers sshtest' 'UseDNS no' "TrustedUserCAKeys $d/user_ca.pub" 'MaxStartups 100:30:200' \
    'MaxSessions 50' 'Subsystem sftp internal-sftp' 'LogLevel VERBOSE' >"$d/sshd_config"
  # Without -D sshd daemonises and writes its PidFile; -E keeps its log out of syslog.
  /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log" </dev/null >/dev/null 2>&1 9>&-
  wait_until sshd ssh_ready
  echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$d/host_ed25519.pub")" >"$d/known_hosts"
}

start_nginx() {
  local d="$S/nginx"
  stop_pidfile "$d/nginx.pid"
  rm -rf "$d"
  mkdir -p "$d/www" "$d/tmp"
  tcp_open "$HTTP_PORT" && die "127.0.0.1:$HTTP_PORT is taken by another process (an nginx of an older services.sh?)"
  # Workers run as nobody: they read www/ and may spool request bodies to tmp/.
  chown nobody "$d/tmp"
  printf '{"service":"gatehouse-test","items":[{"id":1,"name":"alpha"},{"id":2,"name":"beta"}],"ok":true}\n' \
    >"$d/www/doc.json"
  head -c 1048576 /dev/urandom >"$d/www/big.bin"
  # One JSON line per request in access.log: tests read what really reached the target, Authorization included.
  # /bench (not logged) is the benchmarks' small answer, so a run does not write a million log lines.
  cat >"$d/nginx.conf" <<EOF
worker_processes 1;
user nobody nogroup;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 1024; }
http {
  log_format gh escape=json '{"time":"\$time_iso8601","remote_addr":"\$remote_addr","method":"\$request_method",'
    '"uri":"\$request_uri","protocol":"\$server_protocol","status":\$status,"host":"\$http_host",'
    '"authorization":"\$http_authorization","request_length":\$request_length,"body_bytes_sent":\$body_bytes_sent}';
  access_log $d/access.log gh;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$HTTP_PORT;
    server_tokens off;
    location / { default_type text/plain; return 200 "ok \$request_method \$request_uri\n"; }
    location = /json { default_type application/json; alias $d/www/doc.json; }
    location = /big { default_type application/octet-stream; alias $d/www/big.bin; }
    location = /bench { access_log off; default_type text/plain; return 200 "gatehouse bench target\n"; }
  }
}
EOF
  # Without "daemon off" nginx forks its master, which writes the pid file; the launcher exits.
  /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" </dev/null >/dev/null 2>&1 9>&- ||
    die "nginx failed to start, see $d/error.log"
  wait_until nginx http_ready
}

stop_pidfile() { # stop_pidfile FILE: TERM the daemon (and its children), KILL it after 10 s
  local p
  [ -f "$1" ] || return 0
  p=$(cat "$1")
  # sshd leaves one child per open session, nginx its workers: end those too, by parent pid.
  pkill -TERM -P "$p" 2>/dev/null || true
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 200); do
    running "$p" || break
    sleep 0.05
  done
  kill -KILL "$p" 2>/dev/null || true
  rm -f "$1"
}

stop_all() {
  local f
  if [ -f "$S/pg/data/postmaster.pid" ]; then
    "${AS_POSTGRES[@]}" "$PG_BIN/pg_ctl" -D "$S/pg/data" -s -m immediate -w stop >/dev/null 2>&1 || true
  fi
  for f in "$S/my/pid" "$S/ssh/sshd.pid" "$S/nginx/nginx.pid"; do
    stop_pidfile "$f"
  done
  rm -f "$S/ready"
}

# Holders are the test runs (by pid) currently relying on the servers.
prune_holders() {
  local h
  for h in "$S"/holders/*; do
    [ -e "$h" ] || continue
    running "$(basename "$h")" || rm -f "$h"
  done
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "up must run as root (PostgreSQL runs as the postgres user via setpriv)"
  [ -z "$(missing_packages)" ] || die "missing packages; run: $0 install"
  if ! core_ready; then
    stop_all
    rm -rf "$S"
    mkdir -p "$S/holders"
    chmod 755 "$S"
    local t0=$SECONDS
    trap 'stop_all' ERR EXIT # a half-started set would leave processes behind
    # initdb and mariadb-install-db are most of the cold start; on two cores they overlap well.
    start_mariadb &
    local my_job=$!
    start_postgres
    start_sshd
    start_nginx
    wait "$my_job" || die "MariaDB failed to start"
    touch "$S/ready"
    trap - ERR EXIT
    log "up in $((SECONDS - t0))s (state in $S)"
  elif ! http_ready; then
    # The other servers are up (perhaps held by another run): nginx alone is (re)started, in ~0.1 s.
    start_nginx
    log "nginx up (state in $S/nginx)"
  fi
  mkdir -p "$S/holders"
  [ -n "$HOLDER" ] && touch "$S/holders/$HOLDER"
  return 0
}

cmd_down() {
  [ -d "$S" ] || return 0
  if [ -n "$HOLDER" ]; then
    rm -f "$S/holders/$HOLDER"
    prune_holders
    if [ -n "$(ls -A "$S/holders" 2>/dev/null)" ]; then
      log "left running for other test runs: $(ls "$S/holders" | tr '\n' ' ')"
      return 0
    fi
  fi
  stop_all
}

cmd_env() {
  cat <<EOF
GH_TEST_SERVICES_DIR=$S
GH_TEST_PG_HOST=127.0.0.1
GH_TEST_PG_PORT=$PG_PORT
GH_TEST_PG_SOCKET_DIR=$S/pg/sock
GH_TEST_PG_DATABASE=appdb
GH_TEST_PG_SUPERUSER=postgres
GH_TEST_PG_SCRAM_USER=scramuser
GH_TEST_PG_SCRAM_PASSWORD=scrampw
GH_TEST_PG_MD5_USER=md5user
GH_TEST_PG_MD5_PASSWORD=md5pw
GH_TEST_PG_TRUST_USER=trustuser
GH_TEST_PG_LOG=$S/pg/postgres.log
GH_TEST_MY_HOST=127.0.0.1
GH_TEST_MY_PORT=$MY_PORT
GH_TEST_MY_SOCKET=$S/my/sock
GH_TEST_MY_DATABASE=appdb
GH_TEST_MY_NATIVE_USER=nativeuser
GH_TEST_MY_NATIVE_PASSWORD=nativepw
GH_TEST_MY_ED_USER=eduser
GH_TEST_MY_ED_PASSWORD=edpw
GH_TEST_MY_LOG=$S/my/general.log
GH_TEST_SSH_HOST=127.0.0.1
GH_TEST_SSH_PORT=$SSH_PORT
GH_TEST_SSH_USER=sshtest
GH_TEST_SSH_PASSWORD=sshtestpw
GH_TEST_SSH_CLIENT_KEY=$S/ssh/client_ed25519
GH_TEST_SSH_CLIENT_PUBKEY=$S/ssh/client_ed25519.pub
GH_TEST_SSH_CERT_KEY=$S/ssh/cert_ed25519
GH_TEST_SSH_CERT=$S/ssh/cert_ed25519-cert.pub
GH_TEST_SSH_USER_CA=$S/ssh/user_ca
GH_TEST_SSH_USER_CA_PUB=$S/ssh/user_ca.pub
GH_TEST_SSH_HOST_KEY_PUB=$S/ssh/host_ed25519.pub
GH_TEST_SSH_KNOWN_HOSTS=$S/ssh/known_hosts
GH_TEST_SSH_LOG=$S/ssh/sshd.log
GH_TEST_HTTP_HOST=127.0.0.1
GH_TEST_HTTP_PORT=$HTTP_PORT
GH_TEST_HTTP_ROOT=$S/nginx/www
GH_TEST_HTTP_ACCESS_LOG=$S/nginx/access.log
GH_TEST_HTTP_ERROR_LOG=$S/nginx/error.log
EOF
}

# Run "$@" under the lock, so concurrent up/down never interleave. Daemons are started with 9>&- so that they
# do not inherit (and hold forever) the lock's descriptor.
locked() {
  exec 9>"$LOCK"
  flock -w 120 9 || die "timed out waiting for $LOCK"
  "$@"
}

CMD=${1:-}
shift || true
HOLDER=""
if [ "${1:-}" = --holder ]; then HOLDER=${2:?--holder needs a pid}; fi
case "$CMD" in
install) cmd_install ;;
up) locked cmd_up ;;
down) locked cmd_down ;;
env) cmd_env ;;
status) all_ready ;;
*)
  sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
  exit 2
  ;;
esac
