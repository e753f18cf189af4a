/**
 * The evidence cost of one proxied statement, without a network or a target: what `session.admit` (decision,
 * durable audit record, request/decision recording events) plus the `result` recording event cost, as a
 * pgbench -S transaction pays them through the PostgreSQL adapter.
 *
 *   node --import tsx bench/evidence-admit.ts [--sessions 4] [--seconds 5] [--dir /dev/shm] [--durability os]
 *     [--text-bytes N] (statements padded to about N characters)
 *
 * Each session loops: a macrotask (like a socket read), admit, record the result. CPU is process-wide (main thread
 * + SQLite writer thread, user + system); "main" is the event loop's busy time, and "main CPU" the main thread's own
 * CPU time (its scheduler run time, where /proc exposes it; busy time also counts time the thread was preempted).
 * Use a tmpfs `--dir` to take fsync out and see CPU alone. `--durability os` opens the store as the gateway does for
 * it (writer in-process, checkpoints in a thread). The last stdout line is JSON.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { Identity } from "../src/core/identity/identity.js";
import { CompiledPolicy } from "../src/core/policy/decide.js";
import { factsFrom } from "../src/core/policy/facts.js";
import { parseConfig } from "../src/core/policy/loader.js";
import { Gate } from "../src/core/session/gate.js";
import { openEvidenceStack } from "../test/support/evidence.js";

const { values: args } = parseArgs({
  options: {
    sessions: { type: "string", default: "4" },
    seconds: { type: "string", default: "5" },
    dir: { type: "string", default: tmpdir() },
    durability: { type: "string", default: "fsync" },
    /** Pad each statement to about this many characters (a comment): a larger request than pgbench's. */
    "text-bytes": { type: "string", default: "0" },
  },
});
const SESSIONS = Number(args.sessions);
const SECONDS = Number(args.seconds);
const PAD = Number(args["text-bytes"]) > 0 ? ` /* ${"x".repeat(Number(args["text-bytes"]))} */` : "";

const CONFIG = `
connections:
  - name: app-db
    type: postgres
    target: { host: 127.0.0.1, port: 5432, user: app, password: x }
    access: [group:bench]
    guardrails:
      - deny: { statements: [drop, truncate] }
`;
const bot: Identity = { subject: "bench", kind: "bot", groups: ["bench"], issuer: "gatehouse", tokenId: "bench" };
const facts = factsFrom({ statements: [{ kind: "select", tables: ["pgbench_accounts"] }] });
// what the PostgreSQL adapter's relay reports for a pgbench -S result
const result = (text: string) => ({ text, tag: "SELECT 1", rows: 1, ms: 0.1, sample: [["-2881"]] });

const dir = mkdtempSync(join(args.dir, "gatehouse-evbench-"));
const durability = args.durability === "os" ? "os" : "fsync";
const evidence = await openEvidenceStack(dir, { store: { durability, worker: durability !== "os" } });
const { audit, recorder } = evidence;
const gate = new Gate({ policy: CompiledPolicy.for(parseConfig(CONFIG, { source: "bench.yaml" })), audit, recorder });
const sessions = await Promise.all(
  Array.from({ length: SESSIONS }, () =>
    gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" }),
  ),
);

let stop = false;
let count = 0;
const latencies: number[] = [];
async function loop(s: (typeof sessions)[number], n: number): Promise<void> {
  for (let i = 0; !stop; i++) {
    await new Promise((r) => setImmediate(r));
    const text = `SELECT abalance FROM pgbench_accounts WHERE aid = ${(n * 7919 + i * 104729) % 100000};${PAD}`;
    const t0 = performance.now();
    const a = await s.admit({ text, facts, data: { message: "query", kinds: ["select"] } });
    latencies.push(performance.now() - t0);
    if (!a.forward) throw new Error(`refused: ${a.message}`);
    // back-pressure as an adapter should honour it: pause this session until the recorder caught up
    if (!s.recording.record("result", result(text))) await s.recording.drain();
    count++;
  }
}

/** The main thread's own CPU in ns (scheduler run time of its task: the main thread's tid is the pid), if exposed. */
const schedstat = `/proc/self/task/${process.pid}/schedstat`;
const mainNs = (): number | undefined =>
  existsSync(schedstat) ? Number(readFileSync(schedstat, "utf8").split(" ")[0]) : undefined;

const main0 = mainNs();
const cpu0 = process.cpuUsage();
const elu0 = performance.eventLoopUtilization();
const t0 = performance.now();
setTimeout(() => (stop = true), SECONDS * 1000);
await Promise.all(sessions.map((s, i) => loop(s, i)));
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const elu = performance.eventLoopUtilization(elu0);
const main1 = mainNs();
await Promise.all(sessions.map((s) => s.close("bench")));
const { commits, largestBatch } = audit.stats;
await evidence.close();
rmSync(dir, { recursive: true, force: true });

latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
const out = {
  name: "evidence per statement",
  sessions: SESSIONS,
  statements_per_s: Math.round(count / wall),
  cpu_us_per_statement: Math.round((cpu.user + cpu.system) / count),
  main_us_per_statement: Math.round((elu.active * 1000) / count),
  ...(main0 !== undefined && main1 !== undefined
    ? { main_cpu_us_per_statement: Number(((main1 - main0) / 1000 / count).toFixed(1)) }
    : {}),
  admit_p50_ms: Number(pct(0.5).toFixed(3)),
  admit_p99_ms: Number(pct(0.99).toFixed(3)),
  commits,
  largest_batch: largestBatch,
};
process.stderr.write(
  `${SESSIONS} sessions: ${out.statements_per_s} statements/s, ${out.cpu_us_per_statement} us CPU/statement ` +
    `(main thread ${out.main_us_per_statement} us busy` +
    (out.main_cpu_us_per_statement === undefined ? "" : `, ${out.main_cpu_us_per_statement} us CPU`) +
    `), admit p50 ${out.admit_p50_ms} ms p99 ${out.admit_p99_ms} ms, ` +
    `${commits} audit commits (largest ${largestBatch})\n`,
);
console.log(JSON.stringify(out));
