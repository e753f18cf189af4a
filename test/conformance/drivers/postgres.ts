/** The conformance driver for PostgreSQL: the pg driver as the client, the target's statement log as its witness. */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { postgresAdapter } from "../../../src/protocols/postgres/adapter.js";
import { SQLSTATE } from "../../../src/protocols/postgres/wire.js";
import { pgConnectionYaml, testPgTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { statementLog } from "../../e2e/postgres/harness.js";
import type { ClientOutcome, ConformanceDriver, DriverSession } from "../driver.js";
import { eventually } from "../eventually.js";

const BAD_PASSWORD = `gh-wrong-${randomUUID()}`;

function client(port: number, connection: string, token: string): pg.Client {
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    database: connection,
    user: "ci-bot",
    password: token,
    connectionTimeoutMillis: 10_000,
  });
  c.on("error", () => undefined);
  return c;
}

function failed(err: unknown): ClientOutcome {
  const e = err as { code?: string; message?: string; detail?: string };
  return { ok: false, answer: e.code, shown: [e.message, e.detail].filter(Boolean).join("\n") };
}

async function query(c: pg.Client, sql: string): Promise<ClientOutcome> {
  try {
    const r = await c.query(sql);
    return { ok: true, shown: JSON.stringify(r.rows) };
  } catch (err) {
    return failed(err);
  }
}

export const postgresDriver: ConformanceDriver = {
  protocol: "postgres",
  adapter: postgresAdapter,
  connection: "conf-db",
  connectionsYaml: () => {
    const target = testPgTarget(services());
    return [
      pgConnectionYaml(target, {
        name: "conf-db",
        group: "ci",
        extra: "guardrails:\n  - deny: { statements: [drop] }",
      }),
      pgConnectionYaml({ ...target, password: BAD_PASSWORD }, { name: "conf-db-badcred", group: "ci" }),
    ].join("\n");
  },
  // a FATAL at login: the target could not be connected to
  unreachable: SQLSTATE.connectionFailure,
  allowed: (m) => `SELECT '${m}' AS m`,
  denied: (m) => `DROP TABLE ${m}`,
  targetSaw: (m) => eventually(async () => (await statementLog(m)).length > 0),
  async once(port, connection, token, request) {
    const c = client(port, connection, token);
    try {
      await c.connect();
    } catch (err) {
      return failed(err);
    }
    try {
      return await query(c, request);
    } finally {
      await c.end().catch(() => undefined);
    }
  },
  async open(port, connection, token): Promise<DriverSession> {
    const c = client(port, connection, token);
    await c.connect();
    return { run: (request) => query(c, request), close: () => c.end().catch(() => undefined) };
  },
  secrets: () => [services().GH_TEST_PG_SCRAM_PASSWORD, BAD_PASSWORD],
};
