/**
 * pgbench against the gateway and its peers, all in the same run (DESIGN.md section 4: performance is measured
 * against peers, never against a fixed number). Cases: -S (read-only) at each client count, and the default
 * TPC-B-like script (BEGIN, 3 UPDATEs, SELECT, INSERT, END per transaction). Each case runs, one after the other:
 *
 *   - direct: pgbench straight to PostgreSQL;
 *   - PgBouncer 1.18, session pooling (Debian's `pgbouncer`, installed here when running as root, else skipped);
 *   - HAProxy in TCP mode, when installed (native code relaying bytes: what any proxy with an extra hop gets here);
 *   - the bare Node.js pass-through proxy (bench/_passthrough-proxy.ts, its own process): what any Node.js proxy
 *     reaches on this machine, the "ceiling" of the gateway rows;
 *   - the gateway with full evidence (guardrails, approval and masking rules configured, recordings on, every
 *     statement analysed, decided and its audit record committed before it is forwarded), once per
 *     `audit.durability`: fsync (the default) and os (written to the OS, not fsynced, before forwarding).
 *
 * Every row carries TPS against direct ("ratio"), against the pass-through proxy ("of_ceiling", gateway rows) and
 * against PgBouncer ("of_pgbouncer", every proxy row but PgBouncer's), and each proxy's own CPU per transaction
 * ("cpu_us_per_tx"): user + system time of the proxy's process over the measured run, divided by the transactions
 * pgbench reports. For PgBouncer, HAProxy and the Node.js proxy that is /proc/PID/stat (utime + stime, all threads)
 * of their process. The gateway runs in this process (Gateway.start), so its CPU is process.cpuUsage() of this
 * process around the run: the gateway's main thread, its store and checkpoint threads and libuv's pool; pgbench
 * is a child process and is not counted, and nothing else runs here during a run but the other (idle) gateway and
 * the wait for pgbench. Connection setup and teardown fall inside the measured run for every path alike.
 *
 *   node --import tsx bench/pgbench.ts [--seconds 8] [--warmup 2] [--clients 4,32] [--tpcb-clients 4]
 */
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { cpuMeter } from "./_cpu.js";
import { servicesUp, startProxyChild, type ProxyChild } from "./_common.js";
import {
  directPgEnv,
  parsePgbench,
  pgbench,
  pgBouncerVersion,
  startBenchGateway,
  startNativeProxy,
  startPgBouncer,
  type BenchGateway,
} from "./_pg-common.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    warmup: { type: "string", default: "2" },
    clients: { type: "string", default: "4,32" },
    "tpcb-clients": { type: "string", default: "4" },
  },
});
const { env, down } = servicesUp();
const direct = directPgEnv(env);

/** One way to the database: where pgbench points, and whose CPU is the proxy's (none for direct). */
interface Path {
  /** Suffix of the row name; "" is the gateway's own row, named after the case as before. */
  row: string;
  label: string;
  env: Record<string, string>;
  cpu?: number | "self";
  gateway?: boolean;
}

await pgbench(direct, "-i", "-s", "1", "-q");
let gw: BenchGateway | undefined;
let gwOs: BenchGateway | undefined;
const children: ProxyChild[] = [];
try {
  const via = (child: ProxyChild) => ({ ...direct, PGHOST: "127.0.0.1", PGPORT: String(child.port) });
  const bouncer = await startPgBouncer({
    host: direct.PGHOST,
    port: direct.PGPORT,
    database: direct.PGDATABASE,
    user: direct.PGUSER,
    password: direct.PGPASSWORD,
  });
  const native = await startNativeProxy(direct.PGHOST, direct.PGPORT);
  const node = await startProxyChild(direct.PGHOST, direct.PGPORT);
  for (const c of [bouncer, native, node]) if (c) children.push(c);
  gw = await startBenchGateway(env);
  gwOs = await startBenchGateway(env, "audit: { durability: os }\n");
  if (bouncer) process.stderr.write(`bench: ${pgBouncerVersion()} on 127.0.0.1:${bouncer.port} (pid ${bouncer.pid})\n`);
  const paths: Path[] = [
    { row: ": direct", label: "direct", env: direct },
    ...(bouncer
      ? [{ row: ": PgBouncer (session pooling)", label: "PgBouncer", env: via(bouncer), cpu: bouncer.pid }]
      : []),
    ...(native
      ? [{ row: ": native proxy (haproxy) ceiling", label: "HAProxy", env: via(native), cpu: native.pid }]
      : []),
    { row: ": pass-through proxy ceiling", label: "Node pass-through", env: via(node), cpu: node.pid },
    { row: "", label: "gateway (durability fsync)", env: gw.libpqEnv, cpu: "self", gateway: true },
    { row: ", audit.durability: os", label: "gateway (durability os)", env: gwOs.libpqEnv, cpu: "self", gateway: true },
  ];
  const cases = [
    ...args.clients.split(",").map((c) => ({ name: `pgbench -S (${c} clients)`, clients: c, script: ["-S"] })),
    ...args["tpcb-clients"]
      .split(",")
      .filter(Boolean)
      .map((c) => ({ name: `pgbench TPC-B-like (${c} clients)`, clients: c, script: [] as string[] })),
  ];
  for (const { name, clients: c, script } of cases) {
    const argv = (seconds: string) => [...script, "-n", "-c", c, "-j", c, "-T", seconds];
    // warm every path (connections, pools, JIT, SQLite pages), then measure one after the other
    if (Number(args.warmup) > 0) for (const p of paths) await pgbench(p.env, ...argv(args.warmup));
    const measured = [];
    for (const p of paths) {
      await sleep(200); // let the previous run's session ends settle outside any measurement
      const cpu = p.cpu === undefined ? undefined : cpuMeter(p.cpu);
      const r = parsePgbench(await pgbench(p.env, ...argv(args.seconds)));
      // the proxies' side of the disconnects (session.end, recording seals) belongs to this run
      await sleep(100);
      const cpuUs = cpu?.();
      measured.push({ ...p, ...r, cpuPerTx: cpuUs === undefined ? undefined : cpuUs / r.transactions });
    }
    const d = measured.find((m) => m.label === "direct")!.tps;
    const b = measured.find((m) => m.label === "PgBouncer")?.tps;
    const p = measured.find((m) => m.label === "Node pass-through")!.tps;
    const audited = (await gw.gateway.store.lastAudit())?.seq ?? 0;
    const round3 = (x: number) => Math.round(x * 1000) / 1000;
    const round1 = (x: number) => Math.round(x * 10) / 10;
    process.stderr.write(`${name} (${audited} audit events so far in the fsync gateway):\n`);
    for (const m of measured) {
      process.stderr.write(
        `  ${m.label.padEnd(27)} ${m.tps.toFixed(0).padStart(7)} TPS` +
          (m.cpuPerTx === undefined ? "" : `, ${m.cpuPerTx.toFixed(1).padStart(6)} us CPU per transaction`) +
          (b && m.label !== "PgBouncer" && m.label !== "direct" ? `, ${(m.tps / b).toFixed(2)} of PgBouncer` : "") +
          "\n",
      );
      console.log(
        JSON.stringify({
          name: `${name}${m.row}`,
          direct: Math.round(d),
          gateway: Math.round(m.tps),
          unit: "TPS",
          ratio: round3(m.tps / d),
          ...(m.gateway ? { of_ceiling: round3(m.tps / p) } : {}),
          ...(b && m.label !== "PgBouncer" && m.label !== "direct" ? { of_pgbouncer: round3(m.tps / b) } : {}),
          ...(m.cpuPerTx === undefined ? {} : { cpu_us_per_tx: round1(m.cpuPerTx) }),
          transactions: m.transactions,
        }),
      );
    }
  }
} finally {
  for (const c of children) c.stop();
  await gw?.stop();
  await gwOs?.stop();
  down();
}
