/**
 * A gateway in front of the real PostgreSQL 15 of the e2e project, with static tokens, for the postgres tests.
 */
import { dialTcp } from "../../../src/core/adapter/index.js";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "node:net";
import { promisify } from "node:util";
import pg from "pg";
import { MessageReader, type Frame } from "../../../src/protocols/postgres/framing.js";
import { connectTarget } from "../../../src/protocols/postgres/target.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { flowFields, gatewayYaml, pgConnectionYaml, testPgTarget, type PgLogin } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";

export const exec = promisify(execFile);

export interface Harness {
  gateway: Gateway;
  dir: string;
  host: string;
  port: number;
  /** Token of ci-bot (group ci, access to every test connection). */
  token: string;
  /** Token of an identity without access. */
  strangerToken: string;
  logs: string[];
  psql(sql: string, opts?: PsqlOptions): Promise<{ stdout: string; stderr: string; code: number }>;
  client(database?: string, extra?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  /** Stops the gateway; `keepDir` leaves the data directory for `audit verify`. */
  stop(opts?: { keepDir?: boolean }): Promise<void>;
}

export interface PsqlOptions {
  database?: string;
  token?: string;
  sslmode?: string;
  args?: string[];
  input?: string;
}

export interface HarnessOptions {
  /** Extra YAML for the app-db connection (guardrails, masking), indented under the connection. */
  appDb?: string;
  /** Extra top-level YAML. */
  top?: string;
  /**
   * More connections (YAML list items at column 2); `TARGET` in the text is replaced by the test PostgreSQL's
   * host/port/database and the SCRAM user's credentials.
   */
  connections?: string;
  targetUser?: PgLogin;
  /** The address the PostgreSQL listener binds, and clients connect to (default 127.0.0.1). */
  listenHost?: string;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const svc = services();
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-pg-"));
  const bot = generateStaticToken();
  const stranger = generateStaticToken();
  const yaml = gatewayYaml({
    data: dir,
    tokens: [
      { name: "ci-bot", sha256: bot.sha256, groups: ["ci"] },
      { name: "stranger", sha256: stranger.sha256, groups: ["web"] },
    ],
    connections: [
      pgConnectionYaml(testPgTarget(svc, options.targetUser), { group: "ci", extra: options.appDb }),
      pgConnectionYaml(testPgTarget(svc), { name: "admin-db", group: "ci" }),
      pgConnectionYaml(testPgTarget(svc, "md5"), { name: "md5-db", group: "ci" }),
      pgConnectionYaml(testPgTarget(svc, "trust"), { name: "trust-db", group: "ci" }),
      (options.connections ?? "").replaceAll("TARGET", flowFields(testPgTarget(svc))),
    ],
    top: options.top,
  });
  const config = parseConfig(yaml, { source: "test.yaml", baseDir: dir });
  const logs: string[] = [];
  const gateway = await Gateway.start(config, {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { postgres: { host: options.listenHost ?? "127.0.0.1", port: 0 } },
    log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`),
  });
  const address = gateway.address("postgres") ?? "";
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  const host = options.listenHost ?? "127.0.0.1";
  const clients: pg.Client[] = [];
  return {
    gateway,
    dir,
    host,
    port,
    token: bot.token,
    strangerToken: stranger.token,
    logs,
    psql: (sql, o = {}) =>
      new Promise((resolve) => {
        const conninfo = `host=${host} port=${port} dbname=${o.database ?? "app-db"} user=ci-bot sslmode=${o.sslmode ?? "disable"} connect_timeout=5`;
        const child = spawn(
          "psql",
          ["-X", "-At", "-v", "ON_ERROR_STOP=1", ...(o.args ?? []), ...(sql ? ["-c", sql] : []), conninfo],
          {
            env: { ...process.env, PGPASSWORD: o.token ?? bot.token },
          },
        );
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.stdin.end(o.input ?? "");
        child.on("close", (code) => resolve({ stdout: stdout.trim(), stderr: stderr.trim(), code: code ?? -1 }));
      }),
    client: async (database = "app-db", extra = {}) => {
      const c = new pg.Client({ host, port, database, user: "ci-bot", password: bot.token, ...extra });
      c.on("error", () => undefined);
      await c.connect();
      clients.push(c);
      return c;
    },
    stop: async (o = {}) => {
      for (const c of clients) await c.end().catch(() => undefined);
      await gateway.stop("test");
      if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A connected superuser client of the test PostgreSQL itself (not through the gateway), to watch the target. */
export async function targetAdmin(): Promise<pg.Client> {
  const svc = services();
  const admin = new pg.Client({
    host: svc.GH_TEST_PG_SOCKET_DIR,
    port: Number(svc.GH_TEST_PG_PORT),
    user: svc.GH_TEST_PG_SUPERUSER,
    database: "postgres",
  });
  await admin.connect();
  return admin;
}

/** Lines of the target's statement log (log_statement=all) that contain `marker`. */
export async function statementLog(marker: string): Promise<string[]> {
  const { readFile } = await import("node:fs/promises");
  const text = await readFile(services().GH_TEST_PG_LOG, "utf8");
  return text.split("\n").filter((l) => l.includes(marker));
}

/** A logged-in connection to the gateway that speaks raw protocol messages. */
export interface RawSession {
  socket: Socket;
  /** Frames up to ReadyForQuery; if the connection closes first, the error carries the frames read. */
  untilReady(): Promise<Frame[]>;
}

/** Logs in to `database` through the gateway as ci-bot, with extra startup parameters. */
export async function rawSession(
  h: Harness,
  params: Record<string, string> = {},
  database = "app-db",
): Promise<RawSession> {
  const conn = await connectTarget({
    open: async () => ({ socket: await dialTcp({ host: h.host, port: h.port }) }),
    purpose: "session",
    target: { host: h.host, port: h.port, user: "ci-bot", password: h.token } as Parameters<
      typeof connectTarget
    >[0]["target"],
    database,
    params,
  });
  const reader = new MessageReader(conn.socket, conn.leftover);
  return {
    socket: conn.socket as Socket,
    untilReady: async () => {
      const frames: Frame[] = [];
      for (;;) {
        const f = await reader.typed(1 << 20).catch((e: Error) => {
          throw Object.assign(e, { frames });
        });
        frames.push(f);
        if (f.type === "Z") return frames;
      }
    },
  };
}
