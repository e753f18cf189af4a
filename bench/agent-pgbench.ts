/**
 * pgbench -S through the network-resident agent against the same gateway reaching PostgreSQL directly, in one run
 * (issue 16: "pgbench -S via the agent vs direct via the gateway, >= 0.8 x").
 *
 * Each gateway runs in this process with full evidence (the policy of bench/pgbench.ts's gateway rows: guardrails,
 * approval and masking rules, recordings, every statement analysed and its audit record committed before it is
 * forwarded) and two connections that differ only in how the target is reached: `app-db` is dialled by the gateway,
 * `app-db-agent` has `via: agent/bench`. The agent is its own process, as in production (`node bin/gatehouse.js
 * agent --config agent.yaml`, the compiled CLI: `npm run build` first), dialling the gateway's agent listener over
 * TLS (pinned key); every target stream of `app-db-agent` is an HTTP/2 CONNECT stream through that tunnel, and the
 * agent dials PostgreSQL itself. One gateway per `audit.durability` (os, then fsync), each with its own agent.
 *
 * For each client count, both paths are warmed up, then measured `--rounds` times in alternating order (direct then
 * agent, agent then direct, ...), so neither side gets the warmer turn or the quieter moment. Per path:
 *
 *   - TPS, the mean over rounds; ratio = via agent / gateway direct (the target);
 *   - the gateway's own CPU per transaction: process.cpuUsage() of this process around each run, as bench/pgbench.ts
 *     measures it (the gateway's threads and libuv's pool; pgbench and the agent are other processes);
 *   - the agent process's CPU per transaction (/proc/PID/stat), and "total" = gateway + agent;
 *   - where the rest of the machine's CPU went (stderr): PostgreSQL (every `postgres` process, exited backends
 *     included), pgbench (this process's waited-for children), and "rest", all other busy CPU: the kernel's work not
 *     charged to a process and anything else running on the machine (other test runs share it and its PostgreSQL).
 *
 * The agent shares this machine's cores with the gateway, pgbench and PostgreSQL, so its CPU is taken from theirs,
 * which a real deployment (the agent next to its targets, the gateway elsewhere) does not do. On a machine that is
 * CPU-bound either way, the ratio follows the CPU per transaction of everything involved: "cpu_bound_ratio" is
 * (gateway + agent + PostgreSQL + pgbench CPU per transaction) direct over via the agent, the ratio this run's
 * costs predict when nothing else competes for the cores ("rest_cpu_share" says how much did).
 *
 * Rows (bench/run.js contract): "..., gateway direct" is the reference (ratio 1, its CPU); "..., via agent" has
 * direct = the gateway-direct TPS, gateway = the via-agent TPS, ratio, cpu_us_per_tx = the gateway's,
 * agent_cpu_us_per_tx = the agent process's and total_cpu_us_per_tx = both.
 *
 *   node --import tsx --import ./bench/_use-dist.js bench/agent-pgbench.ts \
 *     [--seconds 8] [--warmup 2] [--clients 4,32] [--rounds 4] [--durability os,fsync]
 *
 * GH_BENCH_AGENT_NODE_ARGS adds node options to the agent process (e.g. "--cpu-prof --cpu-prof-dir=DIR").
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { generateStaticToken } from "../src/core/identity/static-tokens.js";
import { pgConnectionYaml, testPgTarget } from "../test/support/gateway-config.js";
import { clockTicksPerSecond, cpuMeter } from "./_cpu.js";
import { servicesUp, spawnCli } from "./_common.js";
import {
  BENCH_CONNECTION_POLICY,
  directPgEnv,
  parsePgbench,
  pgbench,
  startBenchGateway,
  type BenchGateway,
} from "./_pg-common.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    warmup: { type: "string", default: "2" },
    clients: { type: "string", default: "4,32" },
    rounds: { type: "string", default: "4" },
    durability: { type: "string", default: "os,fsync" },
  },
});
const { env, down } = servicesUp();
const direct = directPgEnv(env);
const AGENT = "bench";
const VIA_AGENT = "app-db-agent";

interface AgentProcess {
  pid: number;
  stop(): Promise<void>;
}

/**
 * `node bin/gatehouse.js agent --config FILE` for `gw`'s agent listener, resolved once the gateway has admitted it
 * (its instance serves app-db-agent).
 */
async function startAgentProcess(gw: BenchGateway, token: string, dir: string): Promise<AgentProcess> {
  const endpoint = gw.gateway.agentEndpoint;
  if (!endpoint) throw new Error("the bench gateway has no agent listener");
  const t = testPgTarget(env);
  const config = join(dir, "agent.yaml");
  writeFileSync(
    config,
    [
      `name: ${AGENT}`,
      `token: ${JSON.stringify(token)}`,
      `gateway: { address: "${endpoint.address}", pin: "${endpoint.pin}" }`,
      "connections:",
      `  - { name: ${VIA_AGENT}, target: { host: ${JSON.stringify(t.host)}, port: ${t.port} } }`,
      "",
    ].join("\n"),
  );
  const nodeArgs = (process.env.GH_BENCH_AGENT_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const { child, output, stop } = spawnCli(["agent", "--config", config], ["ignore", "ignore", "pipe"], nodeArgs);
  const admitted = () =>
    gw.gateway.agents
      .status()
      .some((a) => a.name === AGENT && a.instances.some((i) => i.connections.includes(VIA_AGENT)));
  for (let waited = 0; !admitted(); waited += 50) {
    if (child.exitCode !== null || child.signalCode !== null || waited > 15_000) {
      await stop();
      throw new Error(`the agent process was not admitted: ${output.stderr.trim().split("\n").slice(-3).join(" / ")}`);
    }
    await sleep(50);
  }
  return { pid: child.pid!, stop };
}

interface Setup {
  durability: string;
  gw: BenchGateway;
  agent: AgentProcess;
  dir: string;
}

async function setUp(durability: string): Promise<Setup> {
  const agentToken = generateStaticToken();
  const gw = await startBenchGateway(
    env,
    [
      `audit: { durability: ${durability} }`,
      'listen: { agents: "127.0.0.1:1" }',
      "agents:",
      "  tokens:",
      `    - { name: ${AGENT}, sha256: ${agentToken.sha256} }`,
      "",
    ].join("\n"),
    {
      agentsListen: true,
      connections: [
        pgConnectionYaml(testPgTarget(env), {
          name: VIA_AGENT,
          group: "bench",
          extra: `${BENCH_CONNECTION_POLICY}\nvia: agent/${AGENT}`,
        }),
      ],
    },
  );
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-agent-"));
  try {
    const agent = await startAgentProcess(gw, agentToken.token, dir);
    process.stderr.write(`bench: gateway (durability ${durability}) with agent process ${agent.pid}\n`);
    return { durability, gw, agent, dir };
  } catch (err) {
    await gw.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

interface Run {
  tps: number;
  transactions: number;
  /** CPU time in microseconds over the run: this process (the gateways), the agent process, and the machine's view. */
  gatewayUs: number;
  agentUs: number;
  load: Load;
}

/**
 * Where the machine's CPU went during a run, in microseconds: all cores busy (user, system, irq; not idle, iowait or
 * steal), pgbench (this process's waited-for children), PostgreSQL (every `postgres` process, with its exited
 * backends), and the capacity (all cores, the run's wall time). The test PostgreSQL may serve other test runs too.
 */
interface Load {
  busy: number;
  capacity: number;
  pgbench: number;
  postgres: number;
}

function loadSnapshot(): Load {
  const hz = clockTicksPerSecond();
  const us = (ticks: number) => (ticks * 1e6) / hz;
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user, nice, system, , , irq, softirq] = cpu as [number, number, number, number, number, number, number];
  let postgres = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    if (!stat.includes(" (postgres) ")) continue;
    const f = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    postgres += f[11]! + f[12]! + f[13]! + f[14]!; // utime, stime, cutime, cstime
  }
  const self = readFileSync("/proc/self/stat", "utf8");
  const f = self
    .slice(self.lastIndexOf(")") + 2)
    .split(" ")
    .map(Number);
  return {
    busy: us(user + nice + system + irq + softirq),
    capacity: us(cpu.reduce((a, b) => a + b, 0)),
    pgbench: us(f[13]! + f[14]!),
    postgres: us(postgres),
  };
}

function loadSince(start: Load): Load {
  const end = loadSnapshot();
  return {
    busy: end.busy - start.busy,
    capacity: end.capacity - start.capacity,
    pgbench: end.pgbench - start.pgbench,
    postgres: end.postgres - start.postgres,
  };
}

await pgbench(direct, "-i", "-s", "1", "-q");
const setups: Setup[] = [];
try {
  for (const d of args.durability.split(",").filter(Boolean)) setups.push(await setUp(d));
  const rounds = Math.max(1, Number(args.rounds));
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const round3 = (x: number) => Math.round(x * 1000) / 1000;
  for (const clients of args.clients.split(",").filter(Boolean)) {
    const name = `pgbench -S (${clients} clients)`;
    const argv = (seconds: string) => ["-S", "-n", "-c", clients, "-j", clients, "-T", seconds];
    for (const s of setups) {
      const paths = {
        direct: s.gw.libpqEnv,
        agent: { ...s.gw.libpqEnv, PGDATABASE: VIA_AGENT },
      };
      if (Number(args.warmup) > 0) for (const p of Object.values(paths)) await pgbench(p, ...argv(args.warmup));
      const runs: Record<keyof typeof paths, Run[]> = { direct: [], agent: [] };
      for (let r = 0; r < rounds; r++) {
        const order: (keyof typeof paths)[] = r % 2 === 0 ? ["direct", "agent"] : ["agent", "direct"];
        for (const path of order) {
          await sleep(200); // the previous run's session ends settle outside any measurement
          const gatewayCpu = cpuMeter("self");
          const agentCpu = cpuMeter(s.agent.pid);
          const load = loadSnapshot();
          const result = parsePgbench(await pgbench(paths[path], ...argv(args.seconds)));
          await sleep(100); // the disconnects (session.end, recording seals) belong to this run
          runs[path].push({ ...result, gatewayUs: gatewayCpu(), agentUs: agentCpu(), load: loadSince(load) });
        }
      }
      const sum = (rs: Run[], f: (r: Run) => number) => rs.reduce((acc, r) => acc + f(r), 0);
      const summary = (rs: Run[]) => {
        const tx = sum(rs, (r) => r.transactions);
        const gateway = sum(rs, (r) => r.gatewayUs);
        const agent = sum(rs, (r) => r.agentUs);
        const postgres = sum(rs, (r) => r.load.postgres);
        const pgbench = sum(rs, (r) => r.load.pgbench);
        const busy = sum(rs, (r) => r.load.busy);
        const other = Math.max(0, busy - gateway - agent - postgres - pgbench);
        return {
          tps: sum(rs, (r) => r.tps) / rs.length,
          transactions: tx,
          gateway: gateway / tx,
          agent: agent / tx,
          postgres: postgres / tx,
          pgbench: pgbench / tx,
          other: other / tx,
          busyShare: busy / sum(rs, (r) => r.load.capacity),
          otherShare: other / sum(rs, (r) => r.load.capacity),
        };
      };
      const d = summary(runs.direct);
      const a = summary(runs.agent);
      // what the ratio would be if these processes had the machine to themselves and it were CPU-bound: their CPU per
      // transaction direct over their CPU per transaction via the agent
      const own = (m: typeof d) => m.gateway + m.agent + m.postgres + m.pgbench;
      const cpuBoundRatio = own(d) / own(a);
      const show = (label: string, rs: Run[], m: ReturnType<typeof summary>) =>
        `  ${label.padEnd(14)} ${m.tps.toFixed(0).padStart(6)} TPS (${rs.map((r) => r.tps.toFixed(0)).join(", ")}); ` +
        `us CPU/tx: gateway ${m.gateway.toFixed(1)}, agent ${m.agent.toFixed(1)}, ` +
        `total ${(m.gateway + m.agent).toFixed(1)}; postgres ${m.postgres.toFixed(0)}, ` +
        `pgbench ${m.pgbench.toFixed(0)}, rest ${m.other.toFixed(0)}; ` +
        `machine ${(100 * m.busyShare).toFixed(0)}% busy, ${(100 * m.otherShare).toFixed(0)}% by the rest\n`;
      process.stderr.write(
        `${name}, audit.durability ${s.durability} (${rounds} rounds, alternating): via agent / gateway direct = ` +
          `${(a.tps / d.tps).toFixed(3)}x (CPU-bound estimate: ${cpuBoundRatio.toFixed(3)}x)\n` +
          show("gateway direct", runs.direct, d) +
          show("via agent", runs.agent, a),
      );
      const prefix = `agent: ${name}, audit.durability: ${s.durability}`;
      console.log(
        JSON.stringify({
          name: `${prefix}, gateway direct`,
          direct: Math.round(d.tps),
          gateway: Math.round(d.tps),
          unit: "TPS",
          ratio: 1,
          cpu_us_per_tx: round1(d.gateway),
          postgres_cpu_us_per_tx: round1(d.postgres),
          rest_cpu_share: round3(d.otherShare),
          transactions: d.transactions,
        }),
      );
      console.log(
        JSON.stringify({
          name: `${prefix}, via agent`,
          direct: Math.round(d.tps),
          gateway: Math.round(a.tps),
          unit: "TPS",
          ratio: round3(a.tps / d.tps),
          cpu_us_per_tx: round1(a.gateway),
          agent_cpu_us_per_tx: round1(a.agent),
          total_cpu_us_per_tx: round1(a.gateway + a.agent),
          postgres_cpu_us_per_tx: round1(a.postgres),
          rest_cpu_share: round3(a.otherShare),
          cpu_bound_ratio: round3(cpuBoundRatio),
          transactions: a.transactions,
        }),
      );
    }
  }
} finally {
  for (const s of setups) {
    await s.agent.stop();
    await s.gw.stop();
    rmSync(s.dir, { recursive: true, force: true });
  }
  down();
}
