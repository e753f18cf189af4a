/**
 * The evidence path alone: main-thread CPU per appended audit record, what the gateway's event loop pays for each
 * request's audit record (normalise, canonical JSON, hash chain, group commit, the store's writes), with nothing
 * else around it. 64 producers append request-sized records (a pgbench -S statement, as the PostgreSQL adapter
 * hands it to the log: protocol, text, message, kinds; the session's id, its connection and its frozen identity),
 * once per `audit.durability` (os, fsync), with the store's writer in-process (`worker: false`) as the gateway
 * runs it; fsyncs, when on, run on libuv's pool and checkpoints in their own thread, so they are not main-thread
 * time.
 *
 *   node --import tsx bench/evidence-append-cpu.ts [--records 50000] [--producers 64] [--dir /tmp]
 *
 * Main-thread CPU is utime + stime of the main thread's own task (/proc/self/task/PID/stat: the main thread's tid is
 * the pid), in clock ticks; process.cpuUsage() would count every thread. Where /proc/self/task/PID/schedstat exists
 * its run time (ns) is reported as well, at a finer resolution. "harness" is the same producer loop without the
 * append (a setImmediate per record, standing in for the socket read that precedes each request in the gateway):
 * part of the main-thread number, not evidence cost. One JSON line per durability for bench/run.js.
 *
 * It uses only openEvidenceStack(dir, { store: { durability, worker: false } }), audit.append() and close(), so
 * that it keeps working while the evidence internals change.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { AuditEventInput } from "../src/core/evidence/audit-event.js";
import { openEvidenceStack } from "../test/support/evidence.js";
import { clockTicksPerSecond, processCpuTicks } from "./_cpu.js";

const { values: args } = parseArgs({
  options: {
    records: { type: "string", default: "50000" },
    producers: { type: "string", default: "64" },
    warmup: { type: "string", default: "5000" },
    dir: { type: "string", default: tmpdir() },
  },
});
const RECORDS = Number(args.records);
const PRODUCERS = Number(args.producers);
const WARMUP = Number(args.warmup);

/** The main thread's CPU: ticks of its task, and its scheduler run time in ns when the kernel exposes it. */
const mainTask = process.pid;
const schedstat = `/proc/self/task/${mainTask}/schedstat`;
const hasSchedstat = existsSync(schedstat);
function mainThreadCpu(): { ticks: number; ns?: number } {
  const ticks = processCpuTicks("self", mainTask);
  return hasSchedstat ? { ticks, ns: Number(readFileSync(schedstat, "utf8").split(" ")[0]) } : { ticks };
}

// A session's identity is one frozen object, appended with every event of the session (as Gate does)
const identity = Object.freeze({
  subject: "bench",
  kind: "bot" as const,
  groups: Object.freeze(["bench"]) as string[],
  issuer: "gatehouse",
  token_id: "bench",
});
const sessions = Array.from({ length: PRODUCERS }, (_, i) => `0f6c1e2a-7b3d-4c8e-9a21-${String(i).padStart(12, "0")}`);
/** The record the gateway appends before forwarding one pgbench -S statement. */
const record = (producer: number, i: number): AuditEventInput => ({
  type: "request",
  identity,
  connection: "app-db",
  session_id: sessions[producer]!,
  decision: "allow",
  data: {
    protocol: "postgres",
    text: `SELECT abalance FROM pgbench_accounts WHERE aid = ${((producer * 7919 + i * 104729) % 100000) + 1};`,
    message: "query",
    kinds: ["select"],
  },
});

/** `count` iterations over PRODUCERS producers, each after a macrotask; `append` false measures the harness. */
async function run(append: ((event: AuditEventInput) => Promise<unknown>) | undefined, count: number) {
  let next = 0;
  const cpu0 = mainThreadCpu();
  const all0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: PRODUCERS }, async (_, producer) => {
      for (let i = 0; next < count; i++) {
        next++;
        await new Promise((r) => setImmediate(r));
        if (append) await append(record(producer, i));
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = mainThreadCpu();
  const all = process.cpuUsage(all0);
  const hz = clockTicksPerSecond();
  return {
    perSecond: count / wall,
    mainUs: ((cpu1.ticks - cpu0.ticks) * 1e6) / hz / count,
    mainSchedUs: cpu1.ns === undefined || cpu0.ns === undefined ? undefined : (cpu1.ns - cpu0.ns) / 1000 / count,
    processUs: (all.user + all.system) / count,
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;
for (const durability of ["os", "fsync"] as const) {
  const dir = mkdtempSync(join(args.dir, "gatehouse-appendcpu-"));
  try {
    const evidence = await openEvidenceStack(dir, { store: { durability, worker: false } });
    try {
      const append = (e: AuditEventInput) => evidence.audit.append(e);
      await run(append, WARMUP); // JIT, SQLite pages, the identity's encoding
      const harness = await run(undefined, RECORDS);
      const r = await run(append, RECORDS);
      process.stderr.write(
        `audit append, durability ${durability}: ${r.perSecond.toFixed(0)} records/s, main thread ` +
          `${r.mainUs.toFixed(2)} us CPU per record (utime+stime)` +
          (r.mainSchedUs === undefined ? "" : `, ${r.mainSchedUs.toFixed(2)} us (schedstat)`) +
          `, harness alone ${harness.mainUs.toFixed(2)} us; whole process ${r.processUs.toFixed(2)} us per record\n`,
      );
      console.log(
        JSON.stringify({
          name: `evidence append, main-thread CPU (audit.durability: ${durability})`,
          gateway: round2(r.mainUs),
          unit: "us CPU/record (main thread)",
          records: RECORDS,
          producers: PRODUCERS,
          records_per_s: Math.round(r.perSecond),
          ...(r.mainSchedUs === undefined ? {} : { main_schedstat_us_per_record: round2(r.mainSchedUs) }),
          harness_us_per_record: round2(harness.mainUs),
          process_us_per_record: round2(r.processUs),
        }),
      );
    } finally {
      await evidence.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
