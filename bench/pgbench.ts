/**
 * pgbench direct vs through the gateway, in the same run, with full evidence on: every statement is analysed,
 * decided, and its audit record committed (group commit) before it is forwarded. Cases: -S (read-only) at each
 * client count, and the default TPC-B-like script (BEGIN, 3 UPDATEs, SELECT, INSERT, END per transaction).
 *
 * Each case also runs through a bare pass-through TCP proxy (bench/_passthrough-proxy.ts, in its own process):
 * the most any Node.js proxy reaches on this machine. It is printed as an extra "pass-through proxy ceiling" row,
 * and the gateway row carries of_ceiling = gateway TPS / proxy TPS. A second gateway with `audit.durability: os`
 * (each record written to the OS, not fsynced, before its statement is forwarded) gets its own row. When haproxy
 * is installed, the same load through it in TCP mode (native code, nothing but relaying) is a "native proxy
 * ceiling" row: what any proxy with an extra hop reaches on this machine, whatever its language.
 *
 *   node --import tsx bench/pgbench.ts [--seconds 10] [--clients 4,32] [--tpcb-clients 4]
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import {
  servicesUp,
  startBenchGateway,
  startNativeProxy,
  startProxyChild,
  type BenchGateway,
  type ProxyChild,
} from "./_pg-common.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    clients: { type: "string", default: "4,32" },
    "tpcb-clients": { type: "string", default: "4" },
  },
});
const { env, down } = servicesUp();
const direct = {
  PGHOST: env.GH_TEST_PG_HOST,
  PGPORT: env.GH_TEST_PG_PORT,
  PGUSER: env.GH_TEST_PG_SCRAM_USER,
  PGPASSWORD: env.GH_TEST_PG_SCRAM_PASSWORD,
  PGDATABASE: env.GH_TEST_PG_DATABASE,
};

const execFileAsync = promisify(execFile);

/** Async on purpose: the gateway runs in this process, so a synchronous child would stall it. */
async function pgbench(extraEnv: Record<string, string>, ...argv: string[]): Promise<string> {
  const { stdout } = await execFileAsync("pgbench", argv, { encoding: "utf8", env: { ...process.env, ...extraEnv } });
  return stdout;
}

function tps(out: string): number {
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(out);
  if (!m) throw new Error(`no tps in pgbench output:\n${out}`);
  return Number(m[1]);
}

await pgbench(direct, "-i", "-s", "1", "-q");
let gw: BenchGateway | undefined;
let gwOs: BenchGateway | undefined;
let proxyChild: ProxyChild | undefined;
let nativeChild: ProxyChild | undefined;
try {
  proxyChild = await startProxyChild(direct.PGHOST, direct.PGPORT);
  const proxy = { ...direct, PGHOST: "127.0.0.1", PGPORT: String(proxyChild.port) };
  nativeChild = await startNativeProxy(direct.PGHOST, direct.PGPORT);
  const native = nativeChild && { ...direct, PGHOST: "127.0.0.1", PGPORT: String(nativeChild.port) };
  gw = await startBenchGateway(env);
  const through = gw.libpqEnv;
  // the same gateway with audit.durability: os (records written to the OS, not fsynced, before forwarding)
  gwOs = await startBenchGateway(env, "audit: { durability: os }\n");
  const throughOs = gwOs.libpqEnv;
  const cases = [
    ...args.clients.split(",").map((c) => ({ name: `pgbench -S (${c} clients)`, clients: c, script: ["-S"] })),
    ...args["tpcb-clients"]
      .split(",")
      .filter(Boolean)
      .map((c) => ({ name: `pgbench TPC-B-like (${c} clients)`, clients: c, script: [] as string[] })),
  ];
  for (const { name, clients: c, script } of cases) {
    const argv = (seconds: string) => [...script, "-n", "-c", c, "-j", c, "-T", seconds];
    // warm all three paths (connections, SQLite pages), then measure one after the other
    await pgbench(direct, ...argv("2"));
    await pgbench(proxy, ...argv("2"));
    if (native) await pgbench(native, ...argv("2"));
    await pgbench(through, ...argv("2"));
    await pgbench(throughOs, ...argv("2"));
    const d = tps(await pgbench(direct, ...argv(args.seconds)));
    const p = tps(await pgbench(proxy, ...argv(args.seconds)));
    const n = native && tps(await pgbench(native, ...argv(args.seconds)));
    const g = tps(await pgbench(through, ...argv(args.seconds)));
    const o = tps(await pgbench(throughOs, ...argv(args.seconds)));
    const audited = (await gw.gateway.store.lastAudit())?.seq ?? 0;
    process.stderr.write(
      `${name}: direct ${d} TPS, pass-through proxy ${p} TPS, gateway ${g} TPS (${audited} audit events so far), ` +
        `gateway with audit.durability os ${o} TPS${n ? `, haproxy ${n} TPS` : ""}\n`,
    );
    const round3 = (x: number) => Math.round(x * 1000) / 1000;
    /** One result row: TPS against direct, and against the pass-through proxy unless it is the proxy's row. */
    const row = (rowName: string, t: number, ofCeiling: boolean) =>
      console.log(
        JSON.stringify({
          name: rowName,
          direct: Math.round(d),
          gateway: Math.round(t),
          unit: "TPS",
          ratio: round3(t / d),
          ...(ofCeiling ? { of_ceiling: round3(t / p) } : {}),
        }),
      );
    row(name, g, true);
    row(`${name}, audit.durability: os`, o, true);
    row(`${name}: pass-through proxy ceiling`, p, false);
    // what a native proxy doing nothing but relaying reaches: the most any proxy with an extra hop gets here
    if (n) row(`${name}: native proxy (haproxy) ceiling`, n, false);
  }
} finally {
  proxyChild?.stop();
  nativeChild?.stop();
  await gw?.stop();
  await gwOs?.stop();
  down();
}
