/**
 * Shared by the PostgreSQL benchmarks: brings up the test PostgreSQL (test/services.sh, as the e2e tests do) and a
 * gateway in front of it with full evidence on (audit log with group commit, session recordings).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { generateStaticToken } from "../src/core/identity/static-tokens.js";
import { parseConfig } from "../src/core/policy/loader.js";
import { Gateway } from "../src/server/gateway.js";
import { freePort, gatewayYaml, pgConnectionYaml, testPgTarget } from "../test/support/gateway-config.js";
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
function killChildrenOnSignal(): void {
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
}

export async function startProxyChild(host: string, port: string): Promise<ProxyChild> {
  killChildrenOnSignal();
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

function onPath(program: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * HAProxy in TCP mode, when it is installed (`apt-get install haproxy`): a native pass-through proxy, the most any
 * proxy with an extra hop reaches on this machine. Undefined when haproxy is not on PATH (the row is skipped).
 */
export async function startNativeProxy(host: string, port: string): Promise<ProxyChild | undefined> {
  if (!onPath("haproxy")) {
    process.stderr.write("bench: haproxy is not installed; no native proxy ceiling row (apt-get install haproxy)\n");
    return undefined;
  }
  killChildrenOnSignal();
  const listen = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-haproxy-"));
  const config = join(dir, "haproxy.cfg");
  writeFileSync(
    config,
    [
      "global",
      "  maxconn 1000",
      "defaults",
      "  mode tcp",
      "  timeout connect 5s",
      "  timeout client 1h",
      "  timeout server 1h",
      "listen pg",
      `  bind 127.0.0.1:${listen}`,
      `  server target ${host}:${port}`,
      "",
    ].join("\n"),
  );
  // -db: stay in the foreground, so the child is the proxy and stop() ends it
  const child = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "ignore", "inherit"] });
  proxyChildren.add(child);
  const stop = () => {
    proxyChildren.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  for (let attempt = 0; ; attempt++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port: listen }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return { port: listen, stop };
    if (attempt === 50 || child.exitCode !== null) {
      stop();
      throw new Error("haproxy did not start listening");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
