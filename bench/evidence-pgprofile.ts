/**
 * Gateway CPU per pgbench -S transaction, measured in the real thing: the gateway runs in this process with full
 * evidence on, pgbench drives it, and process CPU (all threads, user + system) is divided by the transactions.
 * Run under `node --cpu-prof` to see where that CPU goes (evidence vs adapter). It also prints each thread's CPU
 * per transaction (/proc/self/task: the main thread, the store's worker, libuv's pool, V8's helpers), because a
 * CPU profile samples wall time: a thread preempted inside a write syscall shows that wait as the write's time.
 *
 *   node --cpu-prof --import tsx bench/evidence-pgprofile.ts [--seconds 10] [--clients 4]
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs, promisify } from "node:util";
import { clockTicksPerSecond, processCpuTicks } from "./_cpu.js";
import { servicesUp } from "./_common.js";
import { startBenchGateway } from "./_pg-common.js";

/** CPU ticks of each thread of this process, keyed by "tid name". */
function threadTicks(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
      out.set(`${tid} ${name}`, processCpuTicks("self", Number(tid)));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

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
  const threads0 = threadTicks();
  const cpu0 = process.cpuUsage();
  const out = await pgbench("-S", "-n", "-c", c, "-j", c, "-T", args.seconds);
  const cpu = process.cpuUsage(cpu0);
  const threads1 = threadTicks();
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
  const perTx = (ticks: number) => (ticks * 1e6) / clockTicksPerSecond() / tx;
  const byThread = [...threads1]
    .map(([k, t]) => [k, perTx(t - (threads0.get(k) ?? 0))] as const)
    .filter(([, us]) => us >= 0.5)
    .sort((a, b) => b[1] - a[1]);
  for (const [k, us] of byThread) process.stderr.write(`  thread ${k.padEnd(24)} ${us.toFixed(1).padStart(6)} us/tx\n`);
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
