/**
 * Audit append throughput with durability on (synchronous=FULL, fsync per commit).
 *
 *   node --import tsx bench/audit-append.ts [--events 20000] [--producers 256] [--compare]
 *
 * "direct" is the naive baseline: better-sqlite3 on the calling thread, one row per transaction.
 * "gateway" is AuditLog (group commit, hash chain, signed checkpoints) on the worker-thread store.
 * --compare also measures the in-process store. With --import ./bench/_use-dist.js (bench/run.js) it runs dist/.
 * The last stdout line is one JSON object for the bench runner.
 */
import Database from "better-sqlite3";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { AuditLog } from "../src/core/evidence/audit-log.js";
import { openStore } from "../src/core/store/open.js";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: "20000" },
    producers: { type: "string", default: "256" },
    compare: { type: "boolean", default: false },
  },
});
const N = Number(args.events);
const PRODUCERS = Number(args.producers);

const event = (i: number) => ({
  type: "request",
  identity: { subject: "ci-bot", kind: "bot" as const, groups: ["ci"], issuer: "gatehouse", token_id: "t1" },
  connection: "app-db",
  session_id: `s-${i % 64}`,
  decision: "allow" as const,
  rule: "connections[0].access",
  data: { statement: `select * from orders where id = ${i}`, params: [i] },
});

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

function direct(dir: string, n: number): number {
  const db = new Database(join(dir, "direct.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(
    "CREATE TABLE audit_events (seq INTEGER PRIMARY KEY, time TEXT, type TEXT, identity TEXT, connection TEXT, " +
      "session_id TEXT, decision TEXT, rule TEXT, data TEXT, prev_hash TEXT, hash TEXT)",
  );
  const insert = db.prepare("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  const start = performance.now();
  for (let i = 1; i <= n; i++) {
    const e = event(i);
    // autocommit: one transaction, one fsync per row
    insert.run(
      i,
      new Date().toISOString(),
      e.type,
      JSON.stringify(e.identity),
      e.connection,
      e.session_id,
      e.decision,
      e.rule,
      JSON.stringify(e.data),
      "0",
      "0",
    );
  }
  const secs = (performance.now() - start) / 1000;
  db.close();
  return n / secs;
}

async function gateway(dir: string, worker: boolean) {
  const store = await openStore({ dataDir: join(dir, worker ? "w" : "p"), worker });
  const log = await AuditLog.open(store, { signingKey: generateKeyPairSync("ed25519") });
  const latencies: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let next = 0;
  // the longest the event loop went without running a timer: what a proxied socket would have waited
  let stallMax = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    stallMax = Math.max(stallMax, now - last);
    last = now;
  }, 1);
  loop.enable();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: PRODUCERS }, async () => {
      while (next < N) {
        const i = next++;
        // in the gateway each append follows a socket read (a macrotask), not the previous append's microtask
        await new Promise((r) => setImmediate(r));
        const t0 = performance.now();
        await log.append(event(i));
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  loop.disable();
  clearInterval(probe);
  const { commits, largestBatch } = log.stats;
  await log.close();
  await store.close();
  latencies.sort((a, b) => a - b);
  return {
    rate: N / secs,
    p50: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    loopP99: loop.percentile(99) / 1e6,
    loopMax: loop.max / 1e6,
    stallMax,
    commits,
    largestBatch,
  };
}

const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-"));
try {
  const directRate = direct(dir, Math.min(N, 5000));
  const gw = await gateway(dir, true);
  const round = (x: number, d = 3) => Number(x.toFixed(d));
  process.stderr.write(
    `direct (1 row/tx, sync): ${directRate.toFixed(0)} events/s\n` +
      `gateway (worker): ${gw.rate.toFixed(0)} events/s, append p50 ${gw.p50.toFixed(2)} ms, p99 ${gw.p99.toFixed(2)} ms, ` +
      `${gw.commits} commits (largest ${gw.largestBatch}), event-loop delay p99 ${gw.loopP99.toFixed(2)} ms, longest stall ${gw.stallMax.toFixed(2)} ms\n`,
  );
  let inprocess: Awaited<ReturnType<typeof gateway>> | undefined;
  if (args.compare) {
    inprocess = await gateway(dir, false);
    process.stderr.write(
      `gateway (in-process): ${inprocess.rate.toFixed(0)} events/s, append p50 ${inprocess.p50.toFixed(2)} ms, p99 ` +
        `${inprocess.p99.toFixed(2)} ms, ${inprocess.commits} commits, event-loop delay p99 ${inprocess.loopP99.toFixed(2)} ms, ` +
        `longest stall ${inprocess.stallMax.toFixed(2)} ms\n`,
    );
  }
  const result = {
    name: "audit append",
    direct: round(directRate, 0),
    gateway: round(gw.rate, 0),
    unit: "events/s",
    ratio: round(gw.rate / directRate, 2),
    events: N,
    producers: PRODUCERS,
    p50_ms: round(gw.p50),
    p99_ms: round(gw.p99),
    event_loop_p99_ms: round(gw.loopP99),
    event_loop_stall_max_ms: round(gw.stallMax),
    ...(inprocess
      ? {
          inprocess: round(inprocess.rate, 0),
          inprocess_event_loop_p99_ms: round(inprocess.loopP99),
          inprocess_event_loop_stall_max_ms: round(inprocess.stallMax),
        }
      : {}),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
