#!/usr/bin/env node
/**
 * Runs every benchmark in bench/ and prints one table of direct vs through-the-gateway numbers.
 *
 *   npm run bench                 all benchmarks (after a build)
 *   node bench/run.js audit       only those whose file name contains "audit"
 *
 * Contract for a benchmark (bench/*.js or bench/*.ts, run with `node --import tsx` for .ts, plus bench/_use-dist.js so
 * the gateway code it imports from src/ runs as compiled to dist/, as in production): print one JSON line
 * per result on stdout, {"name", "direct", "gateway", "unit", "ratio"} and optionally "of_ceiling" (the gateway's
 * number as a fraction of a bare pass-through proxy's), "of_pgbouncer" (as a fraction of PgBouncer's in the same run)
 * and "cpu_us_per_tx" (the measured proxy's own process CPU per transaction or request, in microseconds), plus, for a
 * gateway that reaches its target through an agent process, "agent_cpu_us_per_tx" (that process's CPU) and
 * "total_cpu_us_per_tx" (gateway + agent), each shown in its own column when some result has it; anything else on
 * stdout is ignored and stderr is shown only if it fails. A benchmark that fails or times out (BENCH_TIMEOUT_S,
 * default 900) is skipped with a line saying why; the others still run. Results go to bench/results.json.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = dirname(benchDir);
const self = basename(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const timeoutMs = Number(process.env.BENCH_TIMEOUT_S ?? 900) * 1000;
/** Numeric fields a result may add, each shown in its own column (see the contract above). */
const OPTIONAL = ["of_ceiling", "of_pgbouncer", "cpu_us_per_tx", "agent_cpu_us_per_tx", "total_cpu_us_per_tx"];

const files = readdirSync(benchDir)
  .filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith(".d.ts") && f !== self && !f.startsWith("_"))
  .filter((f) => filters.length === 0 || filters.some((p) => f.includes(p)))
  .sort();

const results = [];
const skipped = [];

for (const file of files) {
  const dist = ["--import", "./bench/_use-dist.js"];
  const args = file.endsWith(".ts")
    ? ["--import", "tsx", ...dist, join("bench", file)]
    : [...dist, join("bench", file)];
  process.stderr.write(`bench: running ${file} ...\n`);
  const started = Date.now();
  const run = spawnSync(process.execPath, args, {
    cwd: root,
    encoding: "utf8",
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const found = parseResults(run.stdout ?? "", file);
  let reason;
  if (run.error) reason = run.error.code === "ETIMEDOUT" ? `timed out after ${timeoutMs / 1000}s` : run.error.message;
  else if (run.status !== 0) reason = `exit ${run.status ?? run.signal}`;
  else if (found.length === 0) reason = "printed no result line";
  if (reason) {
    const tail = (run.stderr ?? "").trim().split("\n").slice(-5).join("\n    ");
    skipped.push({ file, reason });
    process.stderr.write(`bench: SKIPPED ${file}: ${reason}${tail ? `\n    ${tail}` : ""}\n`);
    continue;
  }
  process.stderr.write(`bench: ${file} done in ${seconds}s (${found.length} result${found.length === 1 ? "" : "s"})\n`);
  results.push(...found);
}

/** JSON lines with at least a name; ratio is computed when the benchmark left it out. */
function parseResults(stdout, file) {
  const out = [];
  for (const line of stdout.split("\n")) {
    const text = line.trim();
    if (!text.startsWith("{")) continue;
    let r;
    try {
      r = JSON.parse(text);
    } catch {
      continue;
    }
    if (typeof r?.name !== "string") continue;
    const direct = toNumber(r.direct);
    const gateway = toNumber(r.gateway);
    let ratio = toNumber(r.ratio);
    if (ratio === undefined && direct && gateway !== undefined) ratio = gateway / direct;
    const optional = {};
    for (const key of OPTIONAL) {
      const v = toNumber(r[key]);
      if (v !== undefined) optional[key] = v;
    }
    out.push({ file, name: r.name, direct, gateway, unit: String(r.unit ?? ""), ratio, ...optional });
  }
  return out;
}

function toNumber(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function fmt(v, digits = 3) {
  if (v === undefined) return "-";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  return Number(v.toPrecision(digits)).toString();
}

// Optional columns, only when some benchmark reports them (other rows leave them empty): "of ceiling", the gateway
// as a fraction of a bare pass-through proxy measured in the same run; "of pgbouncer", as a fraction of PgBouncer's;
// "us CPU/tx", the measured proxy's own process CPU per transaction; "agent us CPU/tx" and "total us CPU/tx", an agent
// process's CPU per transaction when the gateway reaches the target through one, and gateway + agent.
const columns = [
  { key: "of_ceiling", title: "of ceiling", show: (v) => `${fmt(v)}x` },
  { key: "of_pgbouncer", title: "of pgbouncer", show: (v) => `${fmt(v)}x` },
  { key: "cpu_us_per_tx", title: "us CPU/tx", show: (v) => fmt(v) },
  { key: "agent_cpu_us_per_tx", title: "agent us CPU/tx", show: (v) => fmt(v) },
  { key: "total_cpu_us_per_tx", title: "total us CPU/tx", show: (v) => fmt(v) },
].filter((c) => results.some((r) => r[c.key] !== undefined));
const header = ["benchmark", "direct", "through gateway", "unit", "ratio", ...columns.map((c) => c.title)];
const rows = results.map((r) => [
  r.name,
  fmt(r.direct),
  fmt(r.gateway),
  r.unit,
  r.ratio === undefined ? "-" : `${fmt(r.ratio)}x`,
  ...columns.map((c) => (r[c.key] === undefined ? "" : c.show(r[c.key]))),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
const line = (cells) =>
  cells
    .map((c, i) => (i === 0 || i === 3 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
    .join("  ")
    .trimEnd();

console.log("");
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const row of rows) console.log(line(row));
if (rows.length === 0) console.log("(no results)");
for (const s of skipped) console.log(`skipped: ${s.file} (${s.reason})`);

const report = {
  date: new Date().toISOString(),
  node: process.version,
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? "", memory_gib: Math.round(totalmem() / 2 ** 30) },
  results,
  skipped,
};
writeFileSync(join(benchDir, "results.json"), JSON.stringify(report, null, 2) + "\n");
console.log(`\nwrote bench/results.json (${results.length} results, ${skipped.length} skipped)`);
