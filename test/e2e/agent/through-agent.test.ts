/**
 * PostgreSQL where only the agent can reach it (issue 16, "Done when"). The real compiled gateway runs in a network
 * namespace of its own: the test PostgreSQL listens on the host's 127.0.0.1, which from inside is the namespace's
 * own empty loopback. A real `gatehouse agent` on the host dials out to the gateway and carries the sessions. With
 * real clients (psql, pgbench): guardrails, masking and evidence as direct; the agent killed with SIGKILL mid-session
 * and started again without restarting the gateway; a wrong agent token; a connection the agent may not serve; and
 * `gatehouse agents ls` against the gateway's API.
 *
 * TLS: psql and pgbench use sslmode=require. From the gateway's side they are remote (they come from the host's
 * end of the veth, not loopback), so the listener's default `tls.require: remote` applies as in a real deployment
 * and the bearer token never crosses the wire in the clear; nothing is relaxed for the test.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentStatus } from "../../../src/agent/registry.js";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import type { VerifyReport } from "../../../src/core/evidence/verify.js";
import { pgConnectionYaml, testPgTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { readAudit } from "../robustness/process.js";
import {
  filesContaining,
  run,
  startIsolatedGateway,
  waitFor,
  type AgentProcess,
  type IsolatedGateway,
} from "./isolated-gateway.js";

const execFileP = promisify(execFile);
const RUN = randomUUID().slice(0, 8);
// a database of this file's own: pgbench -i (re)creates its tables, and other tests share appdb
const DATABASE = `gh_agent_${RUN}`;
const PEOPLE = `people_${RUN}`;
const MASK = "********";

let gw: IsolatedGateway;
let agent: AgentProcess;
/** The psql session with the refused DROP and the masked SELECT, replayed at the end. */
let guardedSession = "";

function superuser(database = "postgres"): pg.Client {
  const svc = services();
  return new pg.Client({
    host: svc.GH_TEST_PG_SOCKET_DIR,
    port: Number(svc.GH_TEST_PG_PORT),
    user: svc.GH_TEST_PG_SUPERUSER,
    database,
  });
}

/** The target's own view, not through the gateway. */
async function direct(sql: string): Promise<pg.QueryResult> {
  const c = superuser(DATABASE);
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

function libpqEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: gw.host,
    PGPORT: String(gw.ports.postgres),
    PGUSER: "ci-bot",
    PGPASSWORD: gw.token,
    PGSSLMODE: "require",
    PGCONNECT_TIMEOUT: "10",
  };
}

/**
 * psql through the gateway, one session running each statement (`-c` each) in turn; VERBOSITY=verbose makes it
 * print each error's SQLSTATE. Without ON_ERROR_STOP it goes on after an error, as a session does after a refusal.
 */
function psql(database: string, sql: string | string[], o: { timeoutMs?: number } = {}) {
  const statements = (typeof sql === "string" ? [sql] : sql).flatMap((q) => ["-c", q]);
  return run("psql", ["-X", "-At", "-v", "VERBOSITY=verbose", "-d", database, ...statements], {
    env: libpqEnv(),
    timeoutMs: o.timeoutMs,
  });
}

function statementLog(marker: string): string[] {
  return readFileSync(services().GH_TEST_PG_LOG, "utf8")
    .split("\n")
    .filter((l) => l.includes(marker));
}

/** The session whose request record has exactly this text (the statement as the client sent it). */
function sessionOf(text: string): string {
  const r = gw
    .audit()
    .find((a) => (a.type === "request" || a.type === "request.blocked" ? dataText(a) === text : false));
  if (!r?.session_id) throw new Error(`no request record for ${text}`);
  return r.session_id;
}

function dataText(r: AuditRecord): string {
  return String((r.data as { text?: unknown } | undefined)?.text ?? "");
}

function routesOf(sessionId: string): AuditRecord[] {
  return gw.audit("session.route").filter((r) => r.session_id === sessionId);
}

/** `gatehouse agents ls [--json]`: the real CLI, run on the host against the admin API in the namespace. */
async function agentsLs(json: boolean): Promise<string> {
  const r = await gw.cliRun(["agents", "ls", ...(json ? ["--json"] : []), "--url", gw.api, "--token", gw.token]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

/** A database of this file's own on the test PostgreSQL, with pgbench's tables and a table to mask. */
async function prepareTarget(): Promise<void> {
  const svc = services();
  const admin = superuser();
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${DATABASE} OWNER ${svc.GH_TEST_PG_SCRAM_USER}`);
  } finally {
    await admin.end();
  }
  // as its owner (scramuser, the gateway's login), directly on the target
  const target = testPgTarget(svc);
  const owner = {
    ...process.env,
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGPASSWORD: target.password,
    PGDATABASE: DATABASE,
  };
  await execFileP("pgbench", ["-i", "-s", "1", "-q"], { env: owner });
  const table = `CREATE TABLE ${PEOPLE} (id int PRIMARY KEY, name text, email text);
    INSERT INTO ${PEOPLE} VALUES (1, 'Alice', 'alice@example.com'), (2, 'Bob', 'bob@example.com')`;
  await execFileP("psql", ["-X", "-v", "ON_ERROR_STOP=1", "-c", table], { env: owner });
}

beforeAll(async () => {
  const target = { ...testPgTarget(services()), database: DATABASE };
  // both at once; the gateway is kept for afterAll even when the target's setup failed
  const [isolated, prepared] = await Promise.allSettled([
    startIsolatedGateway({
      label: "thrupg",
      connections: [
        pgConnectionYaml(target, {
          name: "app-db",
          group: "ci",
          extra: [
            "via: agent/office",
            "guardrails:",
            "  - deny: { statements: [drop, truncate] }",
            `masking: { columns: ["${PEOPLE}.email"] }`,
          ].join("\n"),
        }),
        // the same target without `via`: the gateway would have to dial it itself, from inside the namespace
        pgConnectionYaml(target, { name: "direct-db", group: "ci" }),
      ],
      agentConnections: [
        { name: "app-db", host: target.host, port: target.port },
        // announced, but the gateway config does not assign it to this agent
        { name: "direct-db", host: target.host, port: target.port },
      ],
    }),
    prepareTarget(),
  ]);
  if (isolated.status === "rejected") throw isolated.reason;
  gw = isolated.value;
  if (prepared.status === "rejected") throw prepared.reason;
  agent = await gw.startAgent();
}, 120_000);

afterAll(async () => {
  await gw?.close();
  const admin = superuser();
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
});

describe("PostgreSQL through the agent, the gateway isolated from the target", () => {
  it("runs the gateway inside the namespace, and admits the agent with the pin `agents pin` printed", async () => {
    const { stdout } = await execFileP("ip", ["netns", "pids", gw.ns.name]);
    expect(stdout.split("\n").filter(Boolean).map(Number)).toContain(gw.gateway.pid);
    expect(gw.gateway.output()).toContain(`agents: listening (${gw.host}:${gw.ports.agents}); pin: ${gw.pin}`);
    const connected = await gw.waitForAudit("agent.connected", (r) => r.type === "agent.connected");
    expect(connected).toMatchObject({
      decision: "allow",
      data: { agent: "office", instance: agent.instance, connections: ["app-db"] },
    });
    expect((connected.data as { address: string }).address).toMatch(new RegExp(`^${gw.ns.hostAddress}:\\d+$`));
  });

  it("an agent cannot serve a connection it was not assigned; the gateway itself cannot reach the target", async () => {
    const [connected] = gw.audit("agent.connected");
    expect(connected?.data).toMatchObject({
      refused: [{ connection: "direct-db", reason: 'connection "direct-db" is not assigned to agent office' }],
    });
    await agent.waitFor(/the gateway will not use this agent for direct-db: .*not assigned to agent office/);

    // direct-db is dialled by the gateway itself, from inside the namespace: nothing listens there
    const refused = await psql("direct-db", "SELECT 1");
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/cannot connect to 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    const start = await gw.waitForAudit(
      "direct-db session.start",
      (r) => r.type === "session.start" && r.connection === "direct-db",
    );
    expect(routesOf(start.session_id ?? "")).toEqual([]);
    expect(gw.audit("session.route").filter((r) => r.connection === "direct-db")).toEqual([]);

    // the very same target through the agent
    const ok = await psql("app-db", `SELECT current_database(), '${RUN}' AS via_agent`);
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toBe(`${DATABASE}|${RUN}\n`);
  });

  it("psql: a denied DROP gets 42501 and never reaches the target, the session goes on, a masked column comes back masked", async () => {
    const drop = `DROP TABLE ${PEOPLE} /* ${RUN}-drop */`;
    const select = `SELECT id, name, email FROM ${PEOPLE} ORDER BY id /* ${RUN}-mask */`;
    const r = await psql("app-db", [drop, select]);
    expect(r.stderr).toMatch(/^ERROR: {2}42501: gatehouse: .*connections\[0\]\.guardrails\[0\]/);
    expect(r.stdout).toBe(`1|Alice|${MASK}\n2|Bob|${MASK}\n`);
    expect(r.code).toBe(0);
    // the target saw the SELECT and never the DROP
    expect(statementLog(`${RUN}-drop`)).toEqual([]);
    expect(statementLog(`${RUN}-mask`).length).toBeGreaterThan(0);
    expect((await direct(`SELECT count(*)::int AS n FROM ${PEOPLE}`)).rows).toEqual([{ n: 2 }]);

    // the evidence: the refusal with its rule, and the session's route through the agent before either request
    const blocked = await gw.waitForAudit(
      "the blocked DROP",
      (a) => a.type === "request.blocked" && dataText(a) === drop,
    );
    expect(blocked).toMatchObject({ decision: "deny", rule: "connections[0].guardrails[0]", connection: "app-db" });
    const allowed = await gw.waitForAudit("the masked SELECT", (a) => a.type === "request" && dataText(a) === select);
    guardedSession = sessionOf(drop);
    expect(allowed.session_id).toBe(guardedSession);
    const [route] = routesOf(guardedSession);
    expect(route).toMatchObject({
      connection: "app-db",
      data: { via: "agent/office", agent: "office", instance: agent.instance, purpose: "session" },
    });
    expect(route?.seq).toBeLessThan(blocked.seq);
  });

  it("pgbench -S for a few seconds through the agent: no failed transaction", async () => {
    const before = gw.audit("session.route").length;
    const r = await run("pgbench", ["-n", "-S", "-T", "3", "-c", "4", "-j", "2", "app-db"], {
      env: libpqEnv(),
      timeoutMs: 30_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(r.stdout)?.[1]);
    expect(processed).toBeGreaterThan(20);
    expect(r.stdout).toMatch(/number of failed transactions: 0 \(0\.000%\)/);
    const tps = /tps = ([\d.]+)/.exec(r.stdout)?.[1];
    process.stderr.write(`through-agent: pgbench -S -c 4 -T 3 via the agent: ${processed} transactions, ${tps} tps\n`);
    // one route per pgbench connection (and catalog lookups, if any), all through the agent
    await waitFor("pgbench's routes", () => gw.audit("session.route").length >= before + 4);
    for (const route of gw.audit("session.route").slice(before))
      expect(route.data).toMatchObject({ via: "agent/office", agent: "office", instance: agent.instance });
  });

  it("gatehouse agents ls shows the agent connected, with its connections", async () => {
    const [json, text] = await Promise.all([agentsLs(true), agentsLs(false)]);
    const [office] = JSON.parse(json) as AgentStatus[];
    expect(office).toMatchObject({ name: "office", state: "connected", connections: ["app-db"] });
    expect(office?.instances).toHaveLength(1);
    expect(office?.instances[0]).toMatchObject({ instance: agent.instance, connections: ["app-db"] });
    expect(office?.instances[0]?.address).toMatch(new RegExp(`^${gw.ns.hostAddress}:`));
    expect(text).toMatch(/^office {2}connected {2}last seen \S+ {2}connections: app-db$/m);
    expect(text).toContain(`  ${agent.instance}  v`);
  });

  it("kill -9 of the agent mid-statement: the client gets an error naming the agent, the session end says why", async () => {
    const sleeping = `SELECT pg_sleep(10) /* ${RUN}-sleep */`;
    const client = psql("app-db", sleeping, { timeoutMs: 60_000 });
    // the statement is on its way to the target (its record comes first: evidence before effect)
    await gw.waitForAudit("the sleeping statement", (r) => r.type === "request" && dataText(r) === sleeping);
    await waitFor("the statement at the target", () => statementLog(`${RUN}-sleep`).length > 0);
    const killedAt = Date.now();
    process.kill(agent.pid, "SIGKILL");
    expect(await agent.exited).toBe("SIGKILL");
    const r = await client;
    // the error reaches the client at once, not when pg_sleep would have ended
    expect(Date.now() - killedAt).toBeLessThan(6_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/FATAL: {2}(?:\w+: )?gatehouse: agent office disconnected: /);

    const session = sessionOf(sleeping);
    const end = await gw.waitForAudit(
      "the killed session's end",
      (a) => a.type === "session.end" && a.session_id === session,
    );
    expect(String((end.data as { reason?: unknown }).reason)).toMatch(/^target lost: agent office disconnected/);
    const gone = await gw.waitForAudit("agent.disconnected", (a) => a.type === "agent.disconnected");
    expect(gone.data).toMatchObject({ agent: "office", instance: agent.instance });
    expect((gone.data as { open_streams: number }).open_streams).toBeGreaterThanOrEqual(1);
  });

  it("while the agent is down a new session is refused at once, and agents ls shows it offline", async () => {
    const r = await psql("app-db", "SELECT 1");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/reached via agent office, which is not connected \(last seen \S+\)/);
    expect(r.ms).toBeLessThan(3_000);
    // the API's view is the same as agents ls --json's above; the text is enough here
    const [office] = await gw.agents();
    expect(office).toMatchObject({ name: "office", state: "offline", connections: ["app-db"], instances: [] });
    expect(office?.last_seen).toBeDefined();
    const text = await agentsLs(false);
    expect(text).not.toContain(agent.instance);
    expect(text).toMatch(/^office {2}offline {2}last seen \S+ {2}connections: app-db$/m);
  });

  it("the agent started again restores service without restarting the gateway", async () => {
    agent = await gw.startAgent();
    const r = await psql("app-db", `SELECT 'back-${RUN}'`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`back-${RUN}\n`);
    const session = sessionOf(`SELECT 'back-${RUN}'`);
    expect(routesOf(session)[0]?.data).toMatchObject({ agent: "office", instance: agent.instance });
    expect(gw.gateway.child.exitCode).toBeNull();
    expect(gw.audit("gateway.start")).toHaveLength(1);
    expect(gw.audit("agent.connected").map((a) => (a.data as { instance: string }).instance)).toHaveLength(2);
  });

  it("an agent with a wrong token is refused, logs why, and the refusal is on record without the token", async () => {
    const wrongToken = `gth_wrong_${randomUUID().replace(/-/g, "")}`;
    const after = gw.audit().at(-1)?.seq ?? 0;
    const impostor = gw.spawnAgent({ token: wrongToken });
    await impostor.waitFor(/the gateway refused this agent: unknown agent name or wrong token/);
    impostor.child.kill("SIGTERM");
    await impostor.exited;
    const refused = await gw.waitForAudit("agent.refused", (a) => a.type === "agent.refused" && a.seq > after);
    expect(refused).toMatchObject({
      decision: "deny",
      data: { agent: "office", reason: "unknown agent name or wrong token" },
    });
    expect((refused.data as { address: string }).address).toMatch(new RegExp(`^${gw.ns.hostAddress}:`));
    expect(JSON.stringify(gw.audit())).not.toContain(wrongToken);
    expect(filesContaining(gw.data, wrongToken)).toEqual([]);
    expect(gw.gateway.output()).not.toContain(wrongToken);
    // the real agent was not disturbed
    const [office] = await gw.agents();
    expect(office?.instances.map((i) => i.instance)).toEqual([agent.instance]);
  });

  // last: it stops the gateway
  it("the stopped gateway's data directory verifies, holds the same evidence, and replays the session", async () => {
    // SIGTERM while an agent is connected: the gateway ends the tunnel and exits (it used to wait for it forever)
    expect(await gw.stopGateway()).toBe(0);
    expect(gw.audit("gateway.stop")).toHaveLength(1);
    const stored = await readAudit(gw.data);
    for (const type of ["agent.connected", "agent.disconnected", "agent.refused", "session.route"])
      expect(stored.filter((r) => r.type === type).map((r) => r.hash)).toEqual(gw.audit(type).map((r) => r.hash));
    expect(stored.at(-1)?.type).toBe("gateway.stop");

    const [verify, replay] = await Promise.all([
      gw.cliRun(["audit", "verify", "--data", gw.data, "--json"]),
      gw.cliRun(["replay", guardedSession, "--data", gw.data]),
    ]);
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
    const report = JSON.parse(verify.stdout) as VerifyReport;
    expect(report.ok).toBe(true);
    expect(report.sessions.unsealed).toBe(0);
    // the recording: the refused DROP and the SELECT with its result as the client saw it, masked
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain(`${RUN}-drop`);
    expect(replay.stdout).toContain(`${RUN}-mask`);
    expect(replay.stdout).toContain(MASK);
    expect(replay.stdout).not.toContain("alice@example.com");

    // neither agent token (right or wrong) nor the bot's is kept anywhere in the data directory
    expect(filesContaining(gw.data, gw.agentToken)).toEqual([]);
    expect(filesContaining(gw.data, gw.token)).toEqual([]);
  });
});
