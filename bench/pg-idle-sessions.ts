/**
 * Memory per idle PostgreSQL session: N concurrent sessions held open through the gateway (target: 1,000 under
 * 200 MB RSS). The gateway runs as its own process (`node bin/gatehouse.js serve`, so `npm run build` first) and
 * its RSS is read from /proc before and after the sessions are open.
 *
 *   node --import tsx bench/pg-idle-sessions.ts [--sessions 1000] [--concurrency 50]
 *
 * The shared test PostgreSQL allows 200 connections, and every gateway session holds one target connection, so
 * as root this benchmark starts its own throwaway PostgreSQL 15 with max_connections above N (trust auth on
 * loopback, no durability). Without root it falls back to the test server and measures the largest N it allows.
 * "direct" is left empty: a direct connection costs the client nothing to hold, so there is no ratio to report.
 */
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { generateStaticToken } from "../src/core/identity/static-tokens.js";
import {
  freePort,
  freePorts,
  gatewayYaml,
  pgConnectionYaml,
  testPgTarget,
  type PgTarget,
} from "../test/support/gateway-config.js";
import { servicesUp, startGatewayProcess } from "./_common.js";

const { values: args } = parseArgs({
  options: { sessions: { type: "string", default: "1000" }, concurrency: { type: "string", default: "50" } },
});
const PG_BIN = "/usr/lib/postgresql/15/bin";
const work = mkdtempSync(join(tmpdir(), "gatehouse-idle-"));
const cleanups: (() => void | Promise<void>)[] = [() => rmSync(work, { recursive: true, force: true })];

interface Target {
  server: PgTarget;
  maxSessions: number;
}

/** A PostgreSQL of our own with room for N connections (root only: initdb runs as the postgres user). */
async function ownPostgres(n: number): Promise<Target> {
  const pgDir = join(work, "pg");
  mkdirSync(join(pgDir, "sock"), { recursive: true });
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  chownSync(work, uid, gid);
  chownSync(pgDir, uid, gid);
  chownSync(join(pgDir, "sock"), uid, gid);
  const asPostgres = ["--reuid=postgres", "--regid=postgres", "--clear-groups", "--"];
  execFileSync(
    "setpriv",
    [...asPostgres, `${PG_BIN}/initdb`, "-D", join(pgDir, "data"), "-U", "postgres"].concat([
      "-A",
      "trust",
      "-E",
      "UTF8",
      "--locale=C.UTF-8",
      "--no-sync",
    ]),
    { stdio: "ignore" },
  );
  const port = await freePort();
  const opts =
    `-p ${port} -k ${join(pgDir, "sock")} -c listen_addresses=127.0.0.1 -c max_connections=${n + 20} ` +
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB";
  const ctl = (...a: string[]): void =>
    void execFileSync("setpriv", [...asPostgres, `${PG_BIN}/pg_ctl`, "-D", join(pgDir, "data"), ...a], {
      stdio: "ignore",
    });
  ctl("-l", join(pgDir, "log"), "-w", "-s", "-o", opts, "start");
  cleanups.unshift(() => ctl("-m", "immediate", "-w", "-s", "stop"));
  return { server: { host: "127.0.0.1", port, database: "postgres", user: "postgres" }, maxSessions: n };
}

/** Fallback: the shared test PostgreSQL, leaving room for its other users. */
async function testPostgres(): Promise<Target> {
  const { env, down } = servicesUp();
  cleanups.unshift(down);
  const server = testPgTarget(env);
  const admin = new pg.Client(server);
  await admin.connect();
  const max = Number((await admin.query<{ max_connections: string }>("SHOW max_connections")).rows[0]?.max_connections);
  await admin.end();
  return { server, maxSessions: max - 30 };
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

try {
  const wanted = Number(args.sessions);
  const target = process.getuid?.() === 0 ? await ownPostgres(wanted) : await testPostgres();
  const n = Math.min(wanted, target.maxSessions);
  if (n < wanted) process.stderr.write(`pg-idle-sessions: the target allows ${target.maxSessions}: measuring ${n}\n`);

  const bot = generateStaticToken();
  const [pgPort, apiPort] = await freePorts(2);
  const config = join(work, "gatehouse.yaml");
  writeFileSync(
    config,
    gatewayYaml({
      listen: { api: apiPort as number, postgres: pgPort as number },
      data: join(work, "data"),
      tokens: [{ name: "bench", sha256: bot.sha256, groups: ["bench"] }],
      connections: [pgConnectionYaml(target.server, { group: "bench" })],
    }),
  );
  const gw = await startGatewayProcess(config);
  cleanups.unshift(() => gw.stop());
  const pid = gw.pid;

  // one session opened and closed first, so lazily loaded code (SQL analyzer, SCRAM, TLS) is in the baseline
  const open = async () => {
    const c = new pg.Client({
      host: "127.0.0.1",
      port: pgPort,
      database: "app-db",
      user: "bench",
      password: bot.token,
    });
    c.on("error", () => undefined);
    await c.connect();
    return c;
  };
  const warm = await open();
  await warm.query("SELECT 1");
  await warm.end();
  await sleep(2000);
  const before = rssKiB(pid);

  const clients: pg.Client[] = [];
  const started = Date.now();
  const concurrency = Number(args.concurrency);
  for (let i = 0; i < n; i += concurrency) {
    const batch = await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, open));
    clients.push(...batch);
  }
  const openSeconds = (Date.now() - started) / 1000;
  // idle for a while: buffers allocated during login that are only freed later should show up or go away
  await sleep(5000);
  const after = rssKiB(pid);
  // every session still answers
  const alive = (
    await Promise.all(
      clients.map((c) =>
        c.query("SELECT 1").then(
          () => 1,
          () => 0,
        ),
      ),
    )
  ).reduce<number>((a, b) => a + b, 0);
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));

  const perSession = (after - before) / n;
  process.stderr.write(
    `pg-idle-sessions: ${n} sessions opened in ${openSeconds.toFixed(1)} s (${alive} answered afterwards); ` +
      `gateway RSS ${(before / 1024).toFixed(1)} MiB -> ${(after / 1024).toFixed(1)} MiB, ` +
      `${perSession.toFixed(1)} KiB per session\n`,
  );
  if (alive !== n) throw new Error(`${n - alive} idle session(s) no longer answered`);
  console.log(
    JSON.stringify({
      name: `${n} idle PostgreSQL sessions: RSS per session`,
      gateway: Math.round(perSession),
      unit: "KiB",
    }),
  );
  console.log(
    JSON.stringify({
      name: `${n} idle PostgreSQL sessions: gateway RSS (target < 200 MB)`,
      gateway: Math.round((after / 1024) * 10) / 10,
      unit: "MiB",
    }),
  );
} finally {
  for (const c of cleanups) await c();
}
