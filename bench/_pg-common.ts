/**
 * Shared by the PostgreSQL benchmarks: brings up the test PostgreSQL (test/services.sh, as the e2e tests do) and a
 * gateway in front of it with full evidence on (audit log with group commit, session recordings).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateStaticToken } from "../src/core/identity/static-tokens.js";
import { parseConfig } from "../src/core/policy/loader.js";
import { Gateway } from "../src/server/gateway.js";
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
  const config = parseConfig(
    `
data: ${dir}
identity:
  tokens:
    - { name: bench, sha256: ${bot.sha256}, groups: [bench] }
connections:
  - name: app-db
    type: postgres
    target: { host: ${env.GH_TEST_PG_HOST}, port: ${env.GH_TEST_PG_PORT}, database: ${env.GH_TEST_PG_DATABASE}, user: ${env.GH_TEST_PG_SCRAM_USER}, password: ${env.GH_TEST_PG_SCRAM_PASSWORD} }
    access: [group:bench]
    guardrails:
      - deny: { statements: [drop, truncate] }
${extra}
`,
    { source: "bench.yaml", baseDir: dir },
  );
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
