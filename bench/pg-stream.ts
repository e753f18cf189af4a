/**
 * A ~100 MiB result (102,400 rows of 1 KiB) direct vs through the gateway, in MB/s. Both sides use the same
 * minimal wire client (login, one simple Query, hop over message headers until ReadyForQuery), so the numbers
 * compare the transport, not a driver's row parsing. Evidence is on (the request is audited; the result's first
 * rows are recorded); no masking, so the gateway's fast path applies. The same stream through the bare pass-through
 * proxy (bench/_passthrough-proxy.ts, own process) is the ceiling row; the gateway row's of_ceiling compares with it.
 * With haproxy installed, the stream through it (native code, TCP mode) is a second, native ceiling row.
 * Best of --runs for each path, the three measured one after the other in every run.
 *
 *   node --import tsx bench/pg-stream.ts [--mib 100] [--runs 3]
 */
import { dialTcp } from "../src/core/adapter/index.js";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { connectTarget, type PostgresTarget } from "../src/protocols/postgres/target.js";
import { query } from "../src/protocols/postgres/wire.js";
import { servicesUp, startProxyChild } from "./_common.js";
import { startBenchGateway, startNativeProxy } from "./_pg-common.js";

const { values: args } = parseArgs({
  options: {
    mib: { type: "string", default: "100" },
    runs: { type: "string", default: "5" },
    // internal: run only the measuring client (a separate process, so it never shares the gateway's thread)
    client: { type: "string" },
  },
});
const rows = Number(args.mib) * 1024;
const SQL = `select repeat('x', 1024) from generate_series(1, ${rows})`;

/** Seconds and bytes to receive the whole result of SQL. */
async function stream(target: PostgresTarget, database: string): Promise<{ seconds: number; bytes: number }> {
  const conn = await connectTarget({
    target,
    database,
    open: async () => ({ socket: await dialTcp(target) }),
    purpose: "session",
  });
  const socket = conn.socket;
  const started = performance.now();
  let bytes = 0;
  let skip = 0; // bytes left of the current message
  let head = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    socket.on("error", reject);
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      let pos = 0;
      while (pos < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - pos);
          skip -= n;
          pos += n;
          continue;
        }
        const need = 5 - head.length;
        head = Buffer.concat([head, chunk.subarray(pos, pos + need)]);
        pos += Math.min(need, chunk.length - pos);
        if (head.length < 5) return;
        const type = head[0];
        skip = head.readInt32BE(1) - 4;
        head = Buffer.alloc(0);
        if (type === 0x5a /* Z */) {
          resolve();
          return;
        }
      }
    });
    socket.resume(); // connectTarget hands the socket over paused
    socket.write(query(SQL));
  });
  const seconds = (performance.now() - started) / 1000;
  socket.end();
  return { seconds, bytes };
}

if (args.client) {
  const { target, database } = JSON.parse(args.client) as { target: PostgresTarget; database: string };
  console.log(JSON.stringify(await stream(target, database)));
  process.exit(0);
}

const execFileAsync = promisify(execFile);
const self = fileURLToPath(import.meta.url);
async function measure(target: PostgresTarget, database: string): Promise<{ seconds: number; bytes: number }> {
  const { stdout } = await execFileAsync(process.execPath, [
    "--import",
    "tsx",
    self,
    "--mib",
    String(args.mib),
    "--client",
    JSON.stringify({ target, database }),
  ]);
  return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { seconds: number; bytes: number };
}

const { env, down } = servicesUp();
const gw = await startBenchGateway(env);
const proxyChild = await startProxyChild(env.GH_TEST_PG_HOST, env.GH_TEST_PG_PORT);
const nativeChild = await startNativeProxy(env.GH_TEST_PG_HOST, env.GH_TEST_PG_PORT);
try {
  const direct: PostgresTarget = {
    host: env.GH_TEST_PG_HOST,
    port: Number(env.GH_TEST_PG_PORT),
    user: env.GH_TEST_PG_SCRAM_USER,
    password: env.GH_TEST_PG_SCRAM_PASSWORD,
  };
  const proxied: PostgresTarget = { ...direct, host: "127.0.0.1", port: proxyChild.port };
  const through: PostgresTarget = { host: "127.0.0.1", port: gw.port, user: "bench", password: gw.token };
  const native: PostgresTarget | undefined = nativeChild && { ...direct, host: "127.0.0.1", port: nativeChild.port };
  const best = { direct: 0, proxy: 0, gateway: 0, native: 0 };
  const mbps = (r: { seconds: number; bytes: number }) => r.bytes / 1e6 / r.seconds;
  // one unmeasured stream on each path first: the server's caches, and each proxy's first-run costs (JIT)
  await measure(direct, env.GH_TEST_PG_DATABASE);
  await measure(proxied, env.GH_TEST_PG_DATABASE);
  await measure(through, "app-db");
  if (native) await measure(native, env.GH_TEST_PG_DATABASE);
  for (let i = 0; i < Number(args.runs); i++) {
    const d = await measure(direct, env.GH_TEST_PG_DATABASE);
    const p = await measure(proxied, env.GH_TEST_PG_DATABASE);
    const g = await measure(through, "app-db");
    const n = native && (await measure(native, env.GH_TEST_PG_DATABASE));
    if (n) best.native = Math.max(best.native, mbps(n));
    best.direct = Math.max(best.direct, mbps(d));
    best.proxy = Math.max(best.proxy, mbps(p));
    best.gateway = Math.max(best.gateway, mbps(g));
    process.stderr.write(
      `pg-stream: run ${i + 1}: direct ${mbps(d).toFixed(0)} MB/s, pass-through proxy ${mbps(p).toFixed(0)} MB/s, ` +
        `gateway ${mbps(g).toFixed(0)} MB/s (${(g.bytes / 1e6).toFixed(1)} MB)` +
        `${n ? `, haproxy ${mbps(n).toFixed(0)} MB/s` : ""}\n`,
    );
  }
  const round3 = (x: number) => Math.round(x * 1000) / 1000;
  const row = (name: string, value: number, ofCeiling: boolean) =>
    console.log(
      JSON.stringify({
        name,
        direct: Math.round(best.direct),
        gateway: Math.round(value),
        unit: "MB/s",
        ratio: round3(value / best.direct),
        ...(ofCeiling ? { of_ceiling: round3(value / best.proxy) } : {}),
      }),
    );
  row(`${args.mib} MiB result stream`, best.gateway, true);
  row(`${args.mib} MiB result stream: pass-through proxy ceiling`, best.proxy, false);
  if (native) row(`${args.mib} MiB result stream: native proxy (haproxy) ceiling`, best.native, false);
} finally {
  proxyChild.stop();
  nativeChild?.stop();
  await gw.stop();
  down();
}
