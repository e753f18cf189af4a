/**
 * Shared by the PostgreSQL benchmarks: brings up the test PostgreSQL (test/services.sh, as the e2e tests do) and a
 * gateway in front of it with full evidence on (audit log with group commit, session recordings).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { generateStaticToken } from "../src/core/identity/static-tokens.js";
import { parseConfig } from "../src/core/policy/loader.js";
import { Gateway } from "../src/server/gateway.js";
import { gatewayYaml, pgConnectionYaml, testPgTarget } from "../test/support/gateway-config.js";
import { parseServicesEnv, type ServicesEnv } from "../test/support/services-env.js";

const script = join(import.meta.dirname, "..", "test", "services.sh");

export function servicesUp(): { env: ServicesEnv; down: () => void } {
  const run = (...args: string[]) =>
    execFileSync("bash", [script, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const holder = String(process.pid);
  run("up", "--holder", holder);
  const env = parseServicesEnv(run("env"));
  return {
    env,
    down: () => (process.env.GH_TEST_KEEP_SERVICES === "1" ? undefined : void run("down", "--holder", holder)),
  };
}

export interface BenchGateway {
  gateway: Gateway;
  port: number;
  token: string;
  /** libpq environment (PGHOST, PGPORT...) that points psql/pgbench at the gateway as the bench identity. */
  libpqEnv: Record<string, string>;
  stop(): Promise<void>;
}

export async function startBenchGateway(env: ServicesEnv, extra = ""): Promise<BenchGateway> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-"));
  const bot = generateStaticToken();
  const yaml = gatewayYaml({
    data: dir,
    tokens: [{ name: "bench", sha256: bot.sha256, groups: ["bench"] }],
    connections: [
      pgConnectionYaml(testPgTarget(env), {
        group: "bench",
        extra: "guardrails:\n  - deny: { statements: [drop, truncate] }",
      }),
    ],
    top: extra,
  });
  const config = parseConfig(yaml, { source: "bench.yaml", baseDir: dir });
  const gateway = await Gateway.start(config, {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { postgres: { host: "127.0.0.1", port: 0 } },
  });
  const address = gateway.address("postgres") ?? "";
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  return {
    gateway,
    port,
    token: bot.token,
    libpqEnv: {
      PGHOST: "127.0.0.1",
      PGPORT: String(port),
      PGUSER: "bench",
      PGPASSWORD: bot.token,
      PGDATABASE: "app-db",
      PGSSLMODE: "disable",
    },
    stop: async () => {
      await gateway.stop("bench");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ProxyChild {
  port: number;
  stop(): void;
}

const proxyChildren = new Set<ChildProcess>();
let killOnSignal = false;

/**
 * The bare pass-through proxy (bench/_passthrough-proxy.ts) in a child process, with its own event loop like a
 * separate proxy: the ceiling row of the PostgreSQL benchmarks. Killed on stop() and on SIGINT/SIGTERM.
 */
export async function startProxyChild(host: string, port: string): Promise<ProxyChild> {
  if (!killOnSignal) {
    killOnSignal = true;
    for (const [signal, code] of [
      ["SIGINT", 130],
      ["SIGTERM", 143],
    ] as const) {
      process.once(signal, () => {
        for (const c of proxyChildren) c.kill("SIGTERM");
        process.exit(code);
      });
    }
  }
  const child = spawn(process.execPath, ["--import", "tsx", join("bench", "_passthrough-proxy.ts"), host, port], {
    cwd: join(import.meta.dirname, ".."),
    stdio: ["pipe", "pipe", "inherit"],
  });
  proxyChildren.add(child);
  const stop = () => {
    proxyChildren.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  const lines = createInterface({ input: child.stdout! });
  try {
    const first = await Promise.race([
      once(lines, "line").then(([line]) => String(line)),
      once(child, "exit").then(([code, signal]) => {
        throw new Error(`pass-through proxy exited before listening (${code ?? signal})`);
      }),
    ]);
    const proxyPort = (JSON.parse(first) as { port?: unknown }).port;
    if (typeof proxyPort !== "number" || proxyPort <= 0) throw new Error(`pass-through proxy said: ${first}`);
    return { port: proxyPort, stop };
  } catch (err) {
    stop();
    throw err;
  } finally {
    lines.close();
  }
}
