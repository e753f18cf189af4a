/**
 * HTTP requests per second with wrk against the test nginx (test/services.sh; `/bench`, a 23-byte text answer
 * nginx does not log), all paths in the same run, one after the other, at each connection count:
 *
 *   - direct: wrk straight to nginx;
 *   - the bare Node.js HTTP reverse proxy (bench/_http-passthrough-proxy.ts, its own process: node:http server,
 *     http.request over a keep-alive Agent, bodies piped both ways, Nagle off): what any Node.js HTTP proxy
 *     reaches on this machine, the "ceiling" of the gateway rows;
 *   - the gateway as shipped (`node bin/gatehouse.js serve --config FILE`, its own process; `npm run build` first)
 *     with full evidence: a static-token identity, one `type: http` connection `web` to nginx with a guardrail, an
 *     approval rule and masking detectors (none of which matches GET /bench, so every request is decided, recorded
 *     and forwarded), once per `audit.durability`: fsync (the default) and os. wrk sends the gateway's bearer token
 *     to http://GW/web/bench; the gateway strips `/web` and the token.
 *
 * Each row has requests/s against direct ("ratio"); proxy rows have their process's own CPU per request
 * ("cpu_us_per_tx": utime + stime of its /proc/PID/stat over the measured run, all threads, divided by the
 * requests wrk counted), and gateway rows their rps as a fraction of the bare proxy's ("of_ceiling"; the HTTP
 * adapter's target is >= 0.6).
 *
 * Before measuring, one request through each path must come back 200 with nginx's answer, and nginx's access log
 * must show it arrived (through the gateway: without the client's bearer token). A gateway that does not answer
 * (no HTTP listener yet, a config it refuses, a refusal) gets a row that says so and has no number; the direct and
 * bare-proxy rows are still measured. wrk is Debian's `wrk`, installed here when missing and running as root.
 *
 *   node --import tsx bench/http-wrk.ts [--seconds 8] [--warmup 2] [--connections 4,32] [--threads 1]
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs, promisify } from "node:util";
import { generateStaticToken } from "../src/core/identity/static-tokens.js";
import { freePorts, gatewayYaml, httpConnectionYaml, testHttpTarget } from "../test/support/gateway-config.js";
import type { ServicesEnv } from "../test/support/services-env.js";
import {
  ensureDebianPackage,
  servicesUp,
  startGatewayProcess,
  startProxyChild,
  type GatewayProcess,
  type ProxyChild,
} from "./_common.js";
import { cpuMeter } from "./_cpu.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    warmup: { type: "string", default: "2" },
    connections: { type: "string", default: "4,32" },
    threads: { type: "string", default: "1" },
  },
});

const execFileAsync = promisify(execFile);
const BENCH_PATH = "/bench";
const BENCH_BODY = "gatehouse bench target\n";

/**
 * The benchmarked connection's policy: "full evidence" as the PostgreSQL benchmarks define it (a guardrail, an
 * approval rule and masking configured), none of which matches GET /bench, so every request is still forwarded.
 */
const HTTP_CONNECTION_POLICY = [
  "guardrails:",
  '  - deny: { methods: [DELETE], paths: ["/admin/*"] }',
  "approvals:",
  '  - require: { methods: [POST], paths: ["/deploy/*"] }',
  "    approvers: [group:ops]",
  "masking: { detectors: [email, credit_card] }",
].join("\n");

interface HttpGateway {
  process: GatewayProcess;
  /** http://127.0.0.1:PORT/web: the connection's base URL on the gateway. */
  base: string;
  stop(): Promise<void>;
}

/** A gateway process with the bench connection; `durability` goes to `audit:` (fsync is the default). */
async function startHttpGateway(env: ServicesEnv, sha256: string, durability: "fsync" | "os"): Promise<HttpGateway> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-http-"));
  try {
    const [api, http] = (await freePorts(2)) as [number, number];
    const config = join(dir, "gatehouse.yaml");
    writeFileSync(
      config,
      gatewayYaml({
        listen: { api, http },
        data: join(dir, "data"),
        tokens: [{ name: "bench", sha256, groups: ["bench"] }],
        connections: [httpConnectionYaml(testHttpTarget(env), { group: "bench", extra: HTTP_CONNECTION_POLICY })],
        top: `audit: { durability: ${durability} }`,
      }),
    );
    const gw = await startGatewayProcess(config);
    return {
      process: gw,
      base: `http://127.0.0.1:${http}/web`,
      stop: async () => {
        await gw.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Why a request failed, in a few words (fetch hides the socket error in `cause`). */
function reason(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

/** One nginx access-log line (log_format gh in test/services.sh). */
interface AccessLine {
  method: string;
  uri: string;
  status: number;
  authorization: string;
}

async function accessLogLine(env: ServicesEnv, uri: string): Promise<AccessLine | undefined> {
  for (let i = 0; i < 40; i++) {
    for (const line of readFileSync(env.GH_TEST_HTTP_ACCESS_LOG, "utf8").split("\n")) {
      if (!line.includes(uri)) continue;
      const parsed = JSON.parse(line) as AccessLine;
      if (parsed.uri === uri) return parsed;
    }
    await sleep(25);
  }
  return undefined;
}

/**
 * The path works: a GET with a fresh marker comes back 200 with nginx's "ok GET URI" and shows in nginx's access
 * log (through the gateway without the gatehouse token, which the other paths pass on as they got it), and the
 * benchmarked URL answers nginx's /bench text. Throws what went wrong.
 */
async function checkPath(env: ServicesEnv, base: string, token: string, gateway: boolean): Promise<void> {
  /** `what` names the request in errors without its marker. */
  const get = async (path: string, what: string) => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(5000),
      });
    } catch (err) {
      throw new Error(`${what} failed: ${reason(err)}`);
    }
    const body = await res.text();
    if (res.status !== 200) throw new Error(`${what} answered ${res.status}: ${body.slice(0, 200).trim()}`);
    return body;
  };
  const marker = `/gatehouse-bench-check-${randomUUID()}`;
  const what = "GET /gatehouse-bench-check-UUID";
  const body = await get(marker, what);
  if (body !== `ok GET ${marker}\n`) throw new Error(`${what} did not get nginx's answer: ${body.slice(0, 200)}`);
  const seen = await accessLogLine(env, marker);
  if (!seen) throw new Error(`${what} answered, but nginx never logged it`);
  if (gateway && seen.authorization.includes(token)) throw new Error("nginx received the client's gatehouse token");
  const bench = await get(BENCH_PATH, `GET ${BENCH_PATH}`);
  if (bench !== BENCH_BODY) throw new Error(`GET ${BENCH_PATH} did not get nginx's answer: ${bench.slice(0, 200)}`);
}

interface WrkResult {
  rps: number;
  requests: number;
  non2xx: number;
  socketErrors: string;
  p50ms?: number;
  p99ms?: number;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n;
}

function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const requests = /(\d+) requests in [\d.]+\w+/.exec(out);
  if (!rps || !requests) throw new Error(`no Requests/sec or request count in wrk output:\n${out}`);
  const latency = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(out);
    return m ? toMs(m[1]!, m[2]!) : undefined;
  };
  return {
    rps: Number(rps[1]),
    requests: Number(requests[1]),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: /Socket errors: (.*)/.exec(out)?.[1]?.trim() ?? "",
    p50ms: latency("50"),
    p99ms: latency("99"),
  };
}

/** Async: the bench process waits while wrk and the proxies run; a synchronous child would block nothing here. */
async function wrk(url: string, token: string, connections: string, seconds: string): Promise<WrkResult> {
  const threads = String(Math.min(Number(args.threads), Number(connections)));
  const argv = ["-t", threads, "-c", connections, "-d", `${seconds}s`, "--latency"];
  const { stdout } = await execFileAsync("wrk", [...argv, "-H", `Authorization: Bearer ${token}`, url], {
    encoding: "utf8",
  });
  return parseWrk(stdout);
}

/** One way to nginx: where wrk points, and whose CPU is the proxy's (none for direct). */
interface Path {
  /** Suffix of the row name; "" is the gateway's own row (durability fsync), named after the case. */
  row: string;
  label: string;
  /** Base URL; undefined when the path is not available (then `skip` says why). */
  base?: string;
  /** Why the path's rows are skipped, short (it goes into the row's name); `detail` says more, on stderr. */
  skip?: string;
  detail?: string;
  pid?: number;
  gateway?: boolean;
}

if (!ensureDebianPackage("wrk", "wrk")) throw new Error("wrk is not installed (apt-get install wrk)");
const { env, down } = servicesUp();
const bot = generateStaticToken();
const children: ProxyChild[] = [];
const gateways: HttpGateway[] = [];
try {
  const target = testHttpTarget(env);
  const node = await startProxyChild(env.GH_TEST_HTTP_HOST, env.GH_TEST_HTTP_PORT, "_http-passthrough-proxy.ts");
  children.push(node);
  const paths: Path[] = [
    { row: ": direct", label: "direct", base: target.url },
    {
      row: ": pass-through proxy ceiling",
      label: "Node HTTP pass-through",
      base: `http://127.0.0.1:${node.port}`,
      pid: node.pid,
    },
  ];
  for (const durability of ["fsync", "os"] as const) {
    const row = durability === "fsync" ? "" : ", audit.durability: os";
    const label = `gateway (durability ${durability})`;
    try {
      const gw = await startHttpGateway(env, bot.sha256, durability);
      gateways.push(gw);
      paths.push({ row, label, base: gw.base, pid: gw.process.pid, gateway: true });
    } catch (err) {
      const detail = `the gateway did not start: ${(err as Error).message}`;
      paths.push({ row, label, gateway: true, skip: detail.slice(0, 100), detail });
    }
  }

  // every path must carry a request to nginx and back before it is measured
  for (const p of paths) {
    if (!p.base) continue;
    try {
      await checkPath(env, p.base, bot.token, p.gateway === true);
    } catch (err) {
      if (!p.gateway) throw new Error(`${p.label}: ${(err as Error).message}`);
      const listener = gateways
        .find((g) => g.base === p.base)
        ?.process.banner.split("\n")
        .find((l) => l.trim().startsWith("http:"))
        ?.split(";")[0]
        ?.trim();
      const message = (err as Error).message;
      const why = /failed: (\S+)$/.exec(message)?.[1] ?? /answered (\d{3})/.exec(message)?.[0] ?? "a wrong answer";
      // "http: not built yet (127.0.0.1:PORT)": the listener's state without its address
      const state = listener?.replace(/\s*\(.*\)\s*$/, "");
      p.skip = `gateway's http listener: ${why}${state ? `; serve says "${state}"` : ""}`;
      p.detail =
        `the gateway did not answer on its http listener ${p.base}: ${message}` +
        (listener ? `; serve said "${listener}"` : "");
      p.base = undefined;
    }
  }
  for (const p of paths) if (p.skip) process.stderr.write(`bench: ${p.label} rows skipped: ${p.detail ?? p.skip}\n`);

  for (const c of args.connections.split(",").filter(Boolean)) {
    const name = `HTTP GET, wrk ${c} connections`;
    /** wrk on one path; a gateway that fails under load (wrk errors, refusals) fails its row, not the bench. */
    const run = async (p: Path, seconds: string): Promise<WrkResult | string> => {
      try {
        const r = await wrk(`${p.base}${BENCH_PATH}`, bot.token, c, seconds);
        return r.non2xx > 0 ? `${r.non2xx} of ${r.requests} responses were not 2xx/3xx` : r;
      } catch (err) {
        if (!p.gateway) throw err;
        return `wrk failed: ${(err as Error).message.split("\n")[0]}`;
      }
    };
    // warm every path (connections, JIT, the gateway's caches), then measure one after the other
    if (Number(args.warmup) > 0) for (const p of paths) if (p.base) await run(p, args.warmup);
    const measured: (Path & Partial<WrkResult> & { cpuPerRequest?: number; failed?: string })[] = [];
    for (const p of paths) {
      if (!p.base) {
        measured.push(p);
        continue;
      }
      await sleep(200); // the previous run's connections close outside any measurement
      const cpu = p.pid === undefined ? undefined : cpuMeter(p.pid);
      const r = await run(p, args.seconds);
      await sleep(100); // the proxy's side of the disconnects belongs to this run
      const cpuUs = cpu?.();
      if (typeof r === "string") {
        if (!p.gateway) throw new Error(`${p.label}: ${r}`);
        measured.push({ ...p, failed: r });
      } else {
        measured.push({ ...p, ...r, cpuPerRequest: cpuUs === undefined ? undefined : cpuUs / r.requests });
      }
    }

    const direct = measured.find((m) => m.label === "direct")!.rps!;
    const ceiling = measured.find((m) => m.label === "Node HTTP pass-through")!.rps!;
    const round3 = (x: number) => Math.round(x * 1000) / 1000;
    const round1 = (x: number) => Math.round(x * 10) / 10;
    process.stderr.write(`${name}, ${args.seconds} s each:\n`);
    for (const m of measured) {
      const skip = m.skip ?? m.failed;
      if (skip !== undefined || m.rps === undefined) {
        process.stderr.write(`  ${m.label.padEnd(26)} skipped: ${skip}\n`);
        console.log(
          JSON.stringify({ name: `${name}${m.row} (skipped: ${skip})`, direct: Math.round(direct), unit: "req/s" }),
        );
        continue;
      }
      process.stderr.write(
        `  ${m.label.padEnd(26)} ${m.rps.toFixed(0).padStart(7)} req/s` +
          (m.cpuPerRequest === undefined ? "" : `, ${m.cpuPerRequest.toFixed(1).padStart(6)} us CPU per request`) +
          (m.gateway ? `, ${(m.rps / ceiling).toFixed(2)} of the bare proxy (target >= 0.6)` : "") +
          `, latency p50 ${m.p50ms ?? "?"} ms p99 ${m.p99ms ?? "?"} ms` +
          (m.socketErrors ? `, socket errors: ${m.socketErrors}` : "") +
          "\n",
      );
      console.log(
        JSON.stringify({
          name: `${name}${m.row}`,
          direct: Math.round(direct),
          gateway: Math.round(m.rps),
          unit: "req/s",
          ratio: round3(m.rps / direct),
          ...(m.gateway ? { of_ceiling: round3(m.rps / ceiling) } : {}),
          ...(m.cpuPerRequest === undefined ? {} : { cpu_us_per_tx: round1(m.cpuPerRequest) }),
          requests: m.requests,
          p50_ms: m.p50ms,
          p99_ms: m.p99ms,
        }),
      );
    }
  }
} finally {
  for (const c of children) c.stop();
  for (const g of gateways) await g.stop();
  down();
}
