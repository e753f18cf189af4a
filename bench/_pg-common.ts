/**
 * Shared by the PostgreSQL benchmarks: brings up the test PostgreSQL (test/services.sh, as the e2e tests do) and a
 * gateway in front of it with full evidence on (audit log with group commit, session recordings).
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateStaticToken } from "../src/core/identity/static-tokens.js";
import { parseConfig } from "../src/core/policy/loader.js";
import { Gateway } from "../src/server/gateway.js";
import { freePort, gatewayYaml, pgConnectionYaml, testPgTarget } from "../test/support/gateway-config.js";
import type { ServicesEnv } from "../test/support/services-env.js";
import {
  ensureDebianPackage,
  isRoot,
  killChildrenOnSignal,
  listeningChild,
  onPath,
  type ProxyChild,
} from "./_common.js";

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

export interface BenchGatewayOptions {
  /** More connection blocks (pgConnectionYaml...) next to the benchmarked app-db, e.g. one reached via an agent. */
  connections?: string[];
  /** Opens the agent listener on 127.0.0.1 at a free port (the config still needs listen.agents and agents.tokens). */
  agentsListen?: boolean;
}

export async function startBenchGateway(
  env: ServicesEnv,
  extra = "",
  options: BenchGatewayOptions = {},
): Promise<BenchGateway> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-"));
  const bot = generateStaticToken();
  const yaml = gatewayYaml({
    data: dir,
    tokens: [{ name: "bench", sha256: bot.sha256, groups: ["bench"] }],
    connections: [
      pgConnectionYaml(testPgTarget(env), { group: "bench", extra: BENCH_CONNECTION_POLICY }),
      ...(options.connections ?? []),
    ],
    top: extra,
  });
  const config = parseConfig(yaml, { source: "bench.yaml", baseDir: dir });
  const gateway = await Gateway.start(config, {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { postgres: { host: "127.0.0.1", port: 0 } },
    ...(options.agentsListen ? { agentsListen: { host: "127.0.0.1", port: 0 } } : {}),
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
  const listen = await freePort();
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
  const listen = await freePort();
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

const execFileAsync = promisify(execFile);

/** Runs pgbench; async on purpose: a gateway running in the bench process would stall behind a synchronous child. */
export async function pgbench(extraEnv: Record<string, string>, ...argv: string[]): Promise<string> {
  const { stdout } = await execFileAsync("pgbench", argv, { encoding: "utf8", env: { ...process.env, ...extraEnv } });
  return stdout;
}

/** TPS (without connection setup) and the transaction count from pgbench's report. */
export function parsePgbench(out: string): { tps: number; transactions: number } {
  const t = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(out);
  const n = /number of transactions actually processed: (\d+)/.exec(out);
  if (!t || !n) throw new Error(`no tps or transaction count in pgbench output:\n${out}`);
  return { tps: Number(t[1]), transactions: Number(n[1]) };
}

/** libpq's environment for pgbench straight to the test PostgreSQL (its SCRAM user). */
export function directPgEnv(env: ServicesEnv) {
  return {
    PGHOST: env.GH_TEST_PG_HOST,
    PGPORT: env.GH_TEST_PG_PORT,
    PGUSER: env.GH_TEST_PG_SCRAM_USER,
    PGPASSWORD: env.GH_TEST_PG_SCRAM_PASSWORD,
    PGDATABASE: env.GH_TEST_PG_DATABASE,
  };
}
