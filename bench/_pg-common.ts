/**
 * Shared by the PostgreSQL benchmarks: brings up the test PostgreSQL (test/services.sh, as the e2e tests do) and a
 * gateway in front of it with full evidence on (audit log with group commit, session recordings).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { generateStaticToken } from "../src/core/identity/static-tokens.js";
import { parseConfig } from "../src/core/policy/loader.js";
import { Gateway } from "../src/server/gateway.js";
import { gatewayYaml, pgConnectionYaml, testPgTarget } from "../test/support/gateway-config.js";
import { parseServicesEnv, type ServicesEnv } from "../test/support/services-env.js";

const script = join(import.meta.dirname, "..", "test", "services.sh");

export function servicesUp(): { env: ServicesEnv; down: () => void } {
  const run = (...args: string[]) =>
    execFileSync("bash", [script, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const holder = String(process.pid);
  run("up", "--holder", holder);
  const env = parseServicesEnv(run("env"));
  return {
    env,
    down: () => (process.env.GH_TEST_KEEP_SERVICES === "1" ? undefined : void run("down", "--holder", holder)),
  };
}

export interface BenchGateway {
  gateway: Gateway;
  port: number;
  token: string;
  /** libpq environment (PGHOST, PGPORT...) that points psql/pgbench at the gateway as the bench identity. */
  libpqEnv: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * The policy of the benchmarked connection: "full evidence" as issue 13 defines it, i.e. guardrails, approval rules
 * and masking rules configured (recording is always on). None of them matches what pgbench sends (SELECT, UPDATE,
 * INSERT, BEGIN/END on pgbench_* tables, integer and short text values), so every statement is still allowed and
 * forwarded, but the gateway evaluates all of them: each statement against the guardrail and the approval rule,
 * each result column against the column rules, each value against the detectors.
 */
export const BENCH_CONNECTION_POLICY = [
  "guardrails:",
  "  - deny: { statements: [drop, truncate] }",
  "approvals:",
  "  - require: { statements: [alter_table, alter_role, grant, revoke] }",
  "    approvers: [group:dba]",
  "    min_approvals: 1",
  "    hold: 5m",
  "  - require: { statements: [delete], tables: [public.secrets] }",
  "    approvers: [group:dba]",
  "masking:",
  '  columns: ["*.password", "users.email", "customers.card_number"]',
  "  detectors: [credit_card, email, jwt, private_key, iban, aws_key]",
].join("\n");

export async function startBenchGateway(env: ServicesEnv, extra = ""): Promise<BenchGateway> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-"));
  const bot = generateStaticToken();
  const yaml = gatewayYaml({
    data: dir,
    tokens: [{ name: "bench", sha256: bot.sha256, groups: ["bench"] }],
    connections: [pgConnectionYaml(testPgTarget(env), { group: "bench", extra: BENCH_CONNECTION_POLICY })],
    top: extra,
  });
  const config = parseConfig(yaml, { source: "bench.yaml", baseDir: dir });
  const gateway = await Gateway.start(config, {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { postgres: { host: "127.0.0.1", port: 0 } },
  });
  const address = gateway.address("postgres") ?? "";
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  return {
    gateway,
    port,
    token: bot.token,
    libpqEnv: {
      PGHOST: "127.0.0.1",
      PGPORT: String(port),
      PGUSER: "bench",
      PGPASSWORD: bot.token,
      PGDATABASE: "app-db",
      PGSSLMODE: "disable",
    },
    stop: async () => {
      await gateway.stop("bench");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ProxyChild {
  port: number;
  /** The proxy's own process, for its CPU time (bench/_cpu.ts). */
  pid: number;
  stop(): void;
}

const proxyChildren = new Set<ChildProcess>();
let killOnSignal = false;

/**
 * The bare pass-through proxy (bench/_passthrough-proxy.ts) in a child process, with its own event loop like a
 * separate proxy: the ceiling row of the PostgreSQL benchmarks. Killed on stop() and on SIGINT/SIGTERM.
 */
function killChildrenOnSignal(): void {
  if (!killOnSignal) {
    killOnSignal = true;
    for (const [signal, code] of [
      ["SIGINT", 130],
      ["SIGTERM", 143],
    ] as const) {
      process.once(signal, () => {
        for (const c of proxyChildren) c.kill("SIGTERM");
        process.exit(code);
      });
    }
  }
}

export async function startProxyChild(host: string, port: string): Promise<ProxyChild> {
  killChildrenOnSignal();
  const child = spawn(process.execPath, ["--import", "tsx", join("bench", "_passthrough-proxy.ts"), host, port], {
    cwd: join(import.meta.dirname, ".."),
    stdio: ["pipe", "pipe", "inherit"],
  });
  proxyChildren.add(child);
  const stop = () => {
    proxyChildren.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  const lines = createInterface({ input: child.stdout! });
  try {
    const first = await Promise.race([
      once(lines, "line").then(([line]) => String(line)),
      once(child, "exit").then(([code, signal]) => {
        throw new Error(`pass-through proxy exited before listening (${code ?? signal})`);
      }),
    ]);
    const proxyPort = (JSON.parse(first) as { port?: unknown }).port;
    if (typeof proxyPort !== "number" || proxyPort <= 0) throw new Error(`pass-through proxy said: ${first}`);
    // spawned without a shell: child.pid is the node process that relays
    return { port: proxyPort, pid: child.pid!, stop };
  } catch (err) {
    stop();
    throw err;
  } finally {
    lines.close();
  }
}

function onPath(program: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * HAProxy in TCP mode, when it is installed (`apt-get install haproxy`): a native pass-through proxy, the most any
 * proxy with an extra hop reaches on this machine. Undefined when haproxy is not on PATH (the row is skipped).
 */
export async function startNativeProxy(host: string, port: string): Promise<ProxyChild | undefined> {
  if (!onPath("haproxy")) {
    process.stderr.write("bench: haproxy is not installed; no native proxy ceiling row (apt-get install haproxy)\n");
    return undefined;
  }
  killChildrenOnSignal();
  const listen = await freeLowPort();
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-haproxy-"));
  const config = join(dir, "haproxy.cfg");
  writeFileSync(
    config,
    [
      "global",
      "  maxconn 1000",
      "defaults",
      "  mode tcp",
      "  timeout connect 5s",
      "  timeout client 1h",
      "  timeout server 1h",
      "listen pg",
      `  bind 127.0.0.1:${listen}`,
      `  server target ${host}:${port}`,
      "",
    ].join("\n"),
  );
  // -db: stay in the foreground (no master process), so the child is the proxy: its pid is what relays, and
  // stop() ends it
  const child = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "ignore", "inherit"] });
  return listeningChild(child, listen, "haproxy", () => rmSync(dir, { recursive: true, force: true }));
}

/** Resolves once `child` accepts connections on 127.0.0.1:`port` (polled for 5 s); stop() also runs `cleanup`. */
async function listeningChild(
  child: ChildProcess,
  port: number,
  what: string,
  cleanup: () => void,
): Promise<ProxyChild> {
  proxyChildren.add(child);
  const stop = () => {
    proxyChildren.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    cleanup();
  };
  for (let attempt = 0; ; attempt++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return { port, pid: child.pid!, stop };
    if (attempt === 50 || child.exitCode !== null || child.signalCode !== null) {
      stop();
      throw new Error(`${what} did not start listening on 127.0.0.1:${port}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A free TCP port on 127.0.0.1 below 32768 (outside Linux's ephemeral range, so no outgoing connection of another
 * process on this machine takes it between this check and the proxy's bind), for proxies that want their port in
 * a config file.
 */
async function freeLowPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error("no free port in 20000-31999");
}

const isRoot = process.getuid?.() === 0;

/**
 * Makes sure a Debian package's program is there, the way test/services.sh does for the test servers: as root,
 * `apt-get install -y --no-install-recommends PACKAGE` (with apt-get update only when the first try cannot find it;
 * the package's own service is not started, /usr/sbin/policy-rc.d says no while it installs); otherwise prints the
 * command to run and returns false, and the caller skips its row.
 */
export function ensureDebianPackage(pkg: string, program: string): boolean {
  const found = () => onPath(program) || existsSync(join("/usr/sbin", program));
  if (found()) return true;
  const command = `apt-get install -y --no-install-recommends ${pkg}`;
  if (!isRoot) {
    process.stderr.write(`bench: ${pkg} is not installed; its row is skipped. To get it, run:\n  sudo ${command}\n`);
    return false;
  }
  process.stderr.write(`bench: installing ${pkg} (${command})\n`);
  const policy = "/usr/sbin/policy-rc.d";
  const madePolicy = !existsSync(policy);
  if (madePolicy) {
    writeFileSync(policy, "#!/bin/sh\nexit 101\n");
    chmodSync(policy, 0o755);
  }
  const apt = (...args: string[]) =>
    execFileSync("apt-get", args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  try {
    try {
      apt("install", "-y", "-qq", "--no-install-recommends", pkg);
    } catch {
      apt("update", "-qq");
      apt("install", "-y", "-qq", "--no-install-recommends", pkg);
    }
  } catch (err) {
    process.stderr.write(`bench: ${command} failed, ${pkg} row skipped: ${(err as Error).message.split("\n")[0]}\n`);
  } finally {
    if (madePolicy) rmSync(policy, { force: true });
  }
  return found();
}

/** Where startPgBouncer sends the bench's clients, and as whom it logs in to the target. */
export interface PgBouncerTarget {
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
}

/**
 * PgBouncer (Debian's `pgbouncer`, 1.18 on Debian 12) in front of the test PostgreSQL: session pooling
 * (pool_mode=session, a server connection per client for the client's whole session, which is what the gateway
 * and the other proxies do), pool size 64 so 32 pgbench clients never wait for one. Clients log in with SCRAM as
 * the target user (auth_file holds that user's password in plain text, which also lets PgBouncer answer the
 * server's SCRAM). As root it runs as the postgres user (PgBouncer refuses root) via setpriv, with its config,
 * log and pidfile in a temp dir that user owns. Undefined when the package is missing and cannot be installed.
 */
export async function startPgBouncer(target: PgBouncerTarget): Promise<ProxyChild | undefined> {
  if (!ensureDebianPackage("pgbouncer", "pgbouncer")) return undefined;
  killChildrenOnSignal();
  const program = onPath("pgbouncer") ? "pgbouncer" : "/usr/sbin/pgbouncer";
  const listen = await freeLowPort();
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-pgbouncer-"));
  const quote = (v: string) => `"${v.replaceAll('"', '""')}"`;
  writeFileSync(join(dir, "userlist.txt"), `${quote(target.user)} ${quote(target.password)}\n`);
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `${target.database} = host=${target.host} port=${target.port} dbname=${target.database}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${listen}`,
      "unix_socket_dir =",
      "auth_type = scram-sha-256",
      `auth_file = ${join(dir, "userlist.txt")}`,
      "pool_mode = session",
      "max_client_conn = 200",
      "default_pool_size = 64",
      `logfile = ${join(dir, "pgbouncer.log")}`,
      `pidfile = ${join(dir, "pgbouncer.pid")}`,
      "log_connections = 0",
      "log_disconnections = 0",
      "log_stats = 0",
      "ignore_startup_parameters = extra_float_digits",
      "",
    ].join("\n"),
  );
  let argv = [program, join(dir, "pgbouncer.ini")];
  if (isRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    for (const f of ["", "userlist.txt", "pgbouncer.ini"]) chownSync(join(dir, f), uid, gid);
    // setpriv execs pgbouncer in place: the child's pid is PgBouncer's
    argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--", ...argv];
  }
  // no -d: PgBouncer stays in the foreground as this child, so stop() (SIGTERM: immediate shutdown) ends it
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "inherit"] });
  const started = await listeningChild(child, listen, "pgbouncer", () => rmSync(dir, { recursive: true, force: true }));
  const pidfile = join(dir, "pgbouncer.pid");
  if (existsSync(pidfile) && Number(readFileSync(pidfile, "utf8").trim()) !== child.pid) {
    started.stop();
    throw new Error(`pgbouncer's pidfile names another process than the one started (${child.pid})`);
  }
  return started;
}

/** PgBouncer's version line (`PgBouncer 1.18.0`), for the bench's log. */
export function pgBouncerVersion(): string {
  try {
    const program = onPath("pgbouncer") ? "pgbouncer" : "/usr/sbin/pgbouncer";
    return execFileSync(program, ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim();
  } catch {
    return "PgBouncer";
  }
}
