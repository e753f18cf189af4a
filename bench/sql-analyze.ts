/**
 * PostgreSQL SQL analysis cost per statement, in microseconds: a cold parse (a text never seen before), a cache
 * hit, the fingerprint, and a cached analysis plus the policy decision (what the adapter pays per repeated query);
 * then pgbench -S texts (`... WHERE aid = <random>`), each new, parsed for real and answered from the literal
 * template that the first of them made.
 *
 *   node --import tsx bench/sql-analyze.ts [--queries 5000] [--rounds 5]
 *
 * Prints one JSON line per result for bench/run.js (no direct baseline: "direct" is null), a summary on stderr.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { Identity } from "../src/core/identity/identity.js";
import { PostgresSqlAnalyzer } from "../src/core/inspect/postgres-sql/index.js";
import { CompiledPolicy, parseConfig } from "../src/core/policy/index.js";

const { values: args } = parseArgs({
  options: { queries: { type: "string", default: "5000" }, rounds: { type: "string", default: "5" } },
});
const N = Number(args.queries);
const ROUNDS = Number(args.rounds);

// a typical OLTP mix; the literal makes every text distinct, as unparameterized clients send them
const SHAPES = [
  (i: number) => `SELECT id, email, name FROM users WHERE id = ${i}`,
  (i: number) => `SELECT o.id, o.total FROM orders o JOIN users u ON u.id = o.user_id WHERE u.id = ${i} LIMIT 50`,
  (i: number) => `UPDATE accounts SET balance = balance - ${i} WHERE id = ${i % 977}`,
  (i: number) => `INSERT INTO events (kind, payload, at) VALUES ('click', '{"n": ${i}}', now())`,
  (i: number) => `DELETE FROM sessions WHERE expires_at < now() - interval '${i} seconds'`,
  (i: number) =>
    `WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent WHERE total > ${i}`,
];
const texts = Array.from({ length: N }, (_, i) => (SHAPES[i % SHAPES.length] as (i: number) => string)(i));

const policy = CompiledPolicy.for(
  parseConfig(
    `
connections:
  - name: db
    type: postgres
    target: { host: h, user: u }
    access: [group:ci]
    guardrails:
      - deny: { statements: [drop, truncate, grant, revoke, alter_role] }
      - deny: { statements: [delete, update], without_where: true }
      - deny: { statements: ["*"], tables: [public.secrets] }
`,
    { env: {} },
  ),
);
const identity: Identity = { subject: "ci-bot", kind: "bot", groups: ["ci"], issuer: "gatehouse", tokenId: "ci-bot" };

function stats(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0) * 1000;
  return { p50: at(0.5), p99: at(0.99) };
}

function time(fn: (text: string) => unknown, inputs: string[]): number[] {
  const out: number[] = [];
  for (const text of inputs) {
    const t = performance.now();
    fn(text);
    out.push(performance.now() - t);
  }
  return out;
}

const cold: number[] = [];
const hit: number[] = [];
const fingerprint: number[] = [];
const decision: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // a fresh analyzer per round: every first analyze() is a real parse (no literal templates)
  const analyzer = await PostgresSqlAnalyzer.load({ cacheSize: N * 2, templateCacheSize: 0 });
  analyzer.analyze("SELECT 1"); // the first call pays one-off WebAssembly warm-up
  cold.push(...time((t) => analyzer.analyze(t), texts));
  hit.push(...time((t) => analyzer.analyze(t), texts));
  fingerprint.push(...time((t) => analyzer.analyze(t).fingerprint, texts));
  decision.push(...time((t) => policy.decide(identity, "db", analyzer.analyze(t).facts), texts));
}

// pgbench -S: one statement shape, a random account each time, so the exact-text cache never hits
const PGBENCH_ACCOUNTS = 100_000 * 10; // scale 10
function pgbenchTexts(): string[] {
  const aids = new Set<number>();
  while (aids.size < N) aids.add(1 + Math.floor(Math.random() * PGBENCH_ACCOUNTS));
  return [...aids].map((aid) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`);
}
const pgbenchCold: number[] = [];
const templateHit: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const parsing = await PostgresSqlAnalyzer.load({ cacheSize: N * 2, templateCacheSize: 0 });
  parsing.analyze("SELECT 1");
  pgbenchCold.push(...time((t) => parsing.analyze(t), pgbenchTexts()));

  const templated = await PostgresSqlAnalyzer.load({ cacheSize: N * 2 });
  templated.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 1;"); // parsed: becomes the template
  const before = templated.stats.templateHits;
  const inputs = pgbenchTexts().filter((t) => !t.endsWith(" 1;"));
  templateHit.push(...time((t) => templated.analyze(t), inputs));
  if (templated.stats.templateHits - before !== inputs.length)
    throw new Error("expected every text to hit the template");
}

const results = [
  ["sql analyze (cold parse)", stats(cold)],
  ["sql analyze (cached)", stats(hit)],
  ["sql fingerprint (first read)", stats(fingerprint)],
  ["policy decision (cached)", stats(decision)],
  ["sql analyze (pgbench -S, cold)", stats(pgbenchCold)],
  ["sql analyze (template hit)", stats(templateHit)],
] as const;
for (const [name, s] of results) {
  process.stderr.write(`${name.padEnd(30)} p50 ${s.p50.toFixed(2)} us   p99 ${s.p99.toFixed(2)} us\n`);
}
for (const [name, s] of results) {
  console.log(JSON.stringify({ name, direct: null, gateway: Number(s.p50.toFixed(2)), unit: "us p50", ratio: null }));
  console.log(
    JSON.stringify({
      name: `${name} p99`,
      direct: null,
      gateway: Number(s.p99.toFixed(2)),
      unit: "us p99",
      ratio: null,
    }),
  );
}
