/**
 * Content-detector throughput: what every text value of a result (or every chunk of terminal output) pays.
 *
 *   node --import tsx bench/masking.ts [--mb 16]
 *
 * "direct" is the cheapest possible look at each value: one `indexOf` for a single character (what any inline
 * filter pays at least). "gateway" is Masker.maskText (or maskBytes) with all six detectors on the same values.
 * Cases: small DataRow-like values without any hit, the same as bytes, 64 KiB terminal chunks without a hit, and
 * small values of which 2% hold a secret. One JSON line per case for bench/run.js.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Masker } from "../src/core/masking/masker.js";

const { values: args } = parseArgs({
  options: { mb: { type: "string", default: "16" } },
});
const TARGET_BYTES = Number(args.mb) * 1024 * 1024;
const masker = Masker.from({ detectors: ["credit_card", "email", "jwt", "private_key", "iban", "aws_key"] });

// Deterministic pseudo-random data (xorshift), so runs compare.
let seed = 0x9e3779b9;
function rand(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}
const WORDS = "the order shipped to customer account balance pending review status active region eu-west note late"
  .split(" ")
  .concat(["café", "naïve", "日本", "Zürich", "status=ok", "id:", "v1.2.3", "a.b.example.com"]);
const pick = <T>(a: readonly T[]): T => a[rand(a.length)]!;
const sentence = (n: number) => Array.from({ length: n }, () => pick(WORDS)).join(" ");
const uuid = () =>
  Array.from({ length: 32 }, () => "0123456789abcdef"[rand(16)])
    .join("")
    .replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");

/** Values as they come out of a typical table: ids, names, timestamps, amounts, UUIDs, JSON, free text. */
function cleanValue(): string {
  switch (rand(8)) {
    case 0:
      return String(rand(10_000_000));
    case 1:
      return `2024-0${1 + rand(9)}-1${rand(10)} 1${rand(10)}:3${rand(10)}:0${rand(10)}+00`;
    case 2:
      return uuid();
    case 3:
      return `${rand(100_000)}.${rand(100)}`;
    case 4:
      return `{"status":"${pick(WORDS)}","count":${rand(1000)},"tags":["${pick(WORDS)}","${pick(WORDS)}"]}`;
    case 5:
      return pick(WORDS);
    default:
      return sentence(3 + rand(25));
  }
}

const SECRETS = [
  "4111 1111 1111 1111",
  "bob.smith@example.com",
  "DE89 3704 0044 0532 0130 00",
  "AKIAIOSFODNN7EXAMPLE",
  "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
];

function build(make: () => string): { values: string[]; bytes: number } {
  const values: string[] = [];
  let bytes = 0;
  while (bytes < TARGET_BYTES) {
    const v = make();
    values.push(v);
    bytes += Buffer.byteLength(v);
  }
  return { values, bytes };
}

function bestOf(runs: number, fn: () => void): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

let sink = 0; // keeps the work observable
function measure<T>(name: string, values: readonly T[], bytes: number, direct: (v: T) => number, gw: (v: T) => number) {
  const run = (f: (v: T) => number) => () => {
    for (const v of values) sink += f(v);
  };
  run(direct)();
  run(gw)(); // warm up both
  const d = bestOf(5, run(direct));
  const g = bestOf(5, run(gw));
  const mbs = (ms: number) => Math.round((bytes / 1024 / 1024 / (ms / 1000)) * 10) / 10;
  const line = {
    name,
    direct: mbs(d),
    gateway: mbs(g),
    unit: "MB/s",
    ratio: Math.round((d / g) * 1000) / 1000,
    values: values.length,
    ns_per_value: Math.round((g * 1e6) / values.length),
  };
  console.log(JSON.stringify(line));
}

const small = build(cleanValue);
measure(
  "masking scan, small values (no hit)",
  small.values,
  small.bytes,
  (v) => v.indexOf("\u0001"),
  (v) => (masker.maskText(v) ? 1 : 0),
);

const buffers = small.values.map((v) => Buffer.from(v));
measure(
  "masking scan, small values as bytes (no hit)",
  buffers,
  small.bytes,
  (b) => b.indexOf(1),
  (b) => (masker.maskBytes(b) ? 1 : 0),
);

const chunk = () => {
  let s = "";
  while (s.length < 64 * 1024) s += `${sentence(12)} ${rand(100_000)} ${uuid()}\r\n`;
  return s;
};
const big = build(chunk);
measure(
  "masking scan, 64 KiB terminal chunks (no hit)",
  big.values,
  big.bytes,
  (v) => v.indexOf("\u0001"),
  (v) => (masker.maskText(v) ? 1 : 0),
);

const withHits = build(() => (rand(50) === 0 ? `${sentence(3)} ${pick(SECRETS)} ${sentence(2)}` : cleanValue()));
let hits = 0;
for (const v of withHits.values) if (masker.maskText(v)) hits++;
measure(
  `masking, small values (${((hits / withHits.values.length) * 100).toFixed(1)}% with a hit)`,
  withHits.values,
  withHits.bytes,
  (v) => v.indexOf("\u0001"),
  (v) => masker.maskText(v)?.text.length ?? 0,
);

if (sink === 42) console.error(""); // never true; stops the loops from being optimised away
