/**
 * Gateway CPU per pgbench -S transaction, measured in the real thing: the gateway runs in this process with full
 * evidence on, pgbench drives it, and process CPU (all threads, user + system) is divided by the transactions.
 * Run under `node --cpu-prof` to see where that CPU goes (evidence vs adapter).
 *
 *   node --cpu-prof --import tsx bench/evidence-pgprofile.ts [--seconds 10] [--clients 4]
 */
import { execFile } from "node:child_process";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs, promisify } from "node:util";
import { servicesUp, startBenchGateway } from "./_pg-common.js";

const { values: args } = parseArgs({
  options: { seconds: { type: "string", default: "10" }, clients: { type: "string", default: "4" } },
});
const { env, down } = servicesUp();
const run = promisify(execFile);
await run("pgbench", ["-i", "-s", "1", "-q"], {
  env: {
    ...process.env,
    PGHOST: env.GH_TEST_PG_HOST,
    PGPORT: env.GH_TEST_PG_PORT,
    PGUSER: env.GH_TEST_PG_SCRAM_USER,
    PGPASSWORD: env.GH_TEST_PG_SCRAM_PASSWORD,
    PGDATABASE: env.GH_TEST_PG_DATABASE,
  },
});
const gw = await startBenchGateway(env, process.env.BENCH_EXTRA ?? "");
const pgEnv = { ...process.env, ...gw.libpqEnv };
const pgbench = async (...argv: string[]) => (await run("pgbench", argv, { encoding: "utf8", env: pgEnv })).stdout;
try {
  const c = args.clients;
  await pgbench("-S", "-n", "-c", c, "-j", c, "-T", "2");
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const out = await pgbench("-S", "-n", "-c", c, "-j", c, "-T", args.seconds);
  const cpu = process.cpuUsage(cpu0);
  loop.disable();
  // event-loop delay: how long a ready socket may wait behind the gateway's own work (e.g. a store flush)
  const delay = { p99_ms: loop.percentile(99) / 1e6, max_ms: loop.max / 1e6 };
  const tx = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
  const us = Math.round((cpu.user + cpu.system) / tx);
  process.stderr.write(
    `${c} clients: ${tps.toFixed(0)} TPS, gateway CPU ${us} us per transaction, ` +
      `event-loop delay p99 ${delay.p99_ms.toFixed(1)} ms, max ${delay.max_ms.toFixed(1)} ms\n`,
  );
  console.log(
    JSON.stringify({
      name: "gateway CPU per pgbench -S transaction",
      clients: Number(c),
      tps,
      cpu_us: us,
      loop_delay_p99_ms: delay.p99_ms,
      loop_delay_max_ms: delay.max_ms,
    }),
  );
} finally {
  await gw.stop();
  down();
}
