/**
 * pgbench direct vs through the gateway, in the same run, with full evidence on: every statement is analysed,
 * decided, and its audit record committed (group commit) before it is forwarded. Cases: -S (read-only) at each
 * client count, and the default TPC-B-like script (BEGIN, 3 UPDATEs, SELECT, INSERT, END per transaction).
 *
 *   node --import tsx bench/pgbench.ts [--seconds 10] [--clients 4,32] [--tpcb-clients 4]
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { servicesUp, startBenchGateway } from "./_pg-common.js";

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
const gw = await startBenchGateway(env);
try {
  const through = gw.libpqEnv;
  const cases = [
    ...args.clients.split(",").map((c) => ({ name: `pgbench -S (${c} clients)`, clients: c, script: ["-S"] })),
    ...args["tpcb-clients"]
      .split(",")
      .filter(Boolean)
      .map((c) => ({ name: `pgbench TPC-B-like (${c} clients)`, clients: c, script: [] as string[] })),
  ];
  for (const { name, clients: c, script } of cases) {
    const argv = (seconds: string) => [...script, "-n", "-c", c, "-j", c, "-T", seconds];
    // warm both paths (connections, SQLite pages), then measure one after the other
    await pgbench(direct, ...argv("2"));
    await pgbench(through, ...argv("2"));
    const d = tps(await pgbench(direct, ...argv(args.seconds)));
    const g = tps(await pgbench(through, ...argv(args.seconds)));
    const audited = (await gw.gateway.store.lastAudit())?.seq ?? 0;
    process.stderr.write(`${name}: direct ${d} TPS, gateway ${g} TPS (${audited} audit events so far)\n`);
    console.log(
      JSON.stringify({
        name,
        direct: Math.round(d),
        gateway: Math.round(g),
        unit: "TPS",
        ratio: Math.round((g / d) * 1000) / 1000,
      }),
    );
  }
} finally {
  await gw.stop();
  down();
}
