/**
 * The agent tunnel in one process: a gateway and agents started here, PostgreSQL (the pg driver) through them.
 * Admission (token, assignment), routing evidence, fail closed when the agent is gone, failover between two
 * instances of one agent, and `agents ls` data. Isolation from the target is shown in netns.test / agent-netns.test.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatehouseAgent } from "../../../src/agent/agent.js";
import { parseAgentConfig } from "../../../src/agent/config.js";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { until } from "./until.js";
import { gatewayYaml, pgConnectionYaml, testPgTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";

const bot = generateStaticToken();
const agentToken = generateStaticToken();
let gateway: Gateway;
let dir: string;
const agents: GatehouseAgent[] = [];
const logs: string[] = [];

function agentConfig(o: { token?: string; connections?: string[]; pin?: string } = {}) {
  const t = testPgTarget(services());
  const names = o.connections ?? ["app-db", "other-db"];
  return parseAgentConfig(
    [
      "name: office",
      `token: ${JSON.stringify(o.token ?? agentToken.token)}`,
      `gateway: { address: "${gateway.agentEndpoint?.address}", pin: "${o.pin ?? gateway.agentEndpoint?.pin}" }`,
      "heartbeat: 1s",
      "reconnect: { min: 100ms, max: 500ms }",
      "connections:",
      ...names.map((n) => `  - { name: ${n}, target: { host: ${t.host}, port: ${t.port} } }`),
    ].join("\n"),
  );
}

async function startAgent(o: Parameters<typeof agentConfig>[0] = {}): Promise<GatehouseAgent> {
  const agent = new GatehouseAgent(agentConfig(o), { version: "test", log: (m) => logs.push(`agent: ${m}`) });
  agents.push(agent);
  const connected = new Promise((resolve, reject) => {
    agent.once("connected", resolve);
    agent.once("refused", (why: string) => reject(new Error(`refused: ${why}`)));
  });
  agent.start();
  await connected;
  // the agent acknowledges welcome before the gateway puts it in service
  await until(async () => gateway.agents.status().some((a) => a.instances.some((i) => i.instance === agent.instance)));
  return agent;
}

async function audit(type: string): Promise<AuditRecord[]> {
  await gateway.recorder.flush();
  return (await gateway.store.readAudit({ fromSeq: 1, limit: 1_000_000 })).filter((r) => r.type === type);
}

function client(connection = "app-db"): pg.Client {
  const address = gateway.address("postgres") ?? "";
  const c = new pg.Client({
    host: "127.0.0.1",
    port: Number(address.slice(address.lastIndexOf(":") + 1)),
    database: connection,
    user: "ci-bot",
    password: bot.token,
    connectionTimeoutMillis: 10_000,
  });
  c.on("error", () => undefined);
  return c;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatehouse-agent-"));
  const target = testPgTarget(services());
  const yaml = gatewayYaml({
    data: dir,
    tokens: [{ name: "ci-bot", sha256: bot.sha256, groups: ["ci"] }],
    connections: [
      pgConnectionYaml(target, { name: "app-db", group: "ci", extra: "via: agent/office" }),
      // not assigned to the agent: reached directly, and refused if the agent announces it
      pgConnectionYaml(target, { name: "other-db", group: "ci" }),
    ],
    top: `listen: { agents: "127.0.0.1:1" }\nagents:\n  heartbeat: 1s\n  tokens:\n    - { name: office, sha256: ${agentToken.sha256} }`,
  });
  gateway = await Gateway.start(parseConfig(yaml, { source: "agent.yaml", baseDir: dir }), {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { postgres: { host: "127.0.0.1", port: 0 } },
    agentsListen: { host: "127.0.0.1", port: 0 },
    log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`),
  });
}, 60_000);

afterAll(async () => {
  for (const a of agents) await a.stop();
  await gateway?.stop("test");
  rmSync(dir, { recursive: true, force: true });
});

describe("agent tunnel", () => {
  it("refuses a session at once while its agent is offline, with the reason in the client's protocol", async () => {
    const c = client();
    const started = Date.now();
    await expect(c.connect()).rejects.toThrow(/reached via agent office, which is not connected/);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(gateway.agents.status()).toMatchObject([{ name: "office", state: "offline", connections: ["app-db"] }]);
  });

  it("refuses and records an agent with a wrong token", async () => {
    const wrong = new GatehouseAgent(agentConfig({ token: "gth_wrong" }), { version: "test", log: () => undefined });
    agents.push(wrong);
    const refused = new Promise<string>((resolve) => wrong.once("refused", resolve));
    wrong.start();
    expect(await refused).toBe("unknown agent name or wrong token");
    await wrong.stop();
    const [record] = await audit("agent.refused");
    expect(record).toMatchObject({
      decision: "deny",
      data: { agent: "office", reason: "unknown agent name or wrong token" },
    });
    expect(JSON.stringify(record)).not.toContain("gth_wrong");
  });

  it("does not connect to a gateway whose key does not match the pin", async () => {
    const pinned = new GatehouseAgent(agentConfig({ pin: `sha256//${"A".repeat(43)}=` }), {
      version: "test",
      log: (m) => logs.push(`pinned: ${m}`),
    });
    agents.push(pinned);
    pinned.start();
    await until(async () => logs.some((l) => /pinned: .*does not match the pin/.test(l)));
    await pinned.stop();
    expect(await audit("agent.connected")).toEqual([]);
  });

  it("carries a session through the agent, and the session's evidence names the agent", async () => {
    const agent = await startAgent();
    const [connected] = await audit("agent.connected");
    expect(connected).toMatchObject({
      data: {
        agent: "office",
        instance: agent.instance,
        connections: ["app-db"],
        refused: [{ connection: "other-db", reason: 'connection "other-db" is not assigned to agent office' }],
      },
    });
    const c = client();
    await c.connect();
    const r = await c.query("SELECT 41 + 1 AS answer");
    expect(r.rows).toEqual([{ answer: 42 }]);
    await c.end();
    const routes = await audit("session.route");
    expect(routes.length).toBeGreaterThan(0);
    expect(routes[0]).toMatchObject({
      connection: "app-db",
      data: { via: "agent/office", agent: "office", instance: agent.instance, purpose: "session" },
    });
    const [start] = (await audit("session.start")).filter((s) => s.session_id === routes[0]?.session_id);
    expect(start).toBeDefined();
    expect(gateway.agents.status()[0]).toMatchObject({ state: "connected", instances: [{ instance: agent.instance }] });
  });

  it("ends a session whose agent goes away with an error, records why, and serves again once it is back", async () => {
    const c = client();
    await c.connect();
    await c.query("SELECT 1");
    const ended = new Promise<Error>((resolve) => c.once("error", resolve));
    for (const a of agents.splice(0)) await a.stop();
    const err = await ended;
    expect(err.message).toMatch(/^gatehouse: agent office disconnected: /);
    await until(async () => (await audit("agent.disconnected")).length > 0);
    expect((await audit("agent.disconnected")).at(-1)).toMatchObject({ data: { agent: "office" } });
    await until(async () =>
      (await audit("session.end")).some((e) =>
        /^target lost: agent office disconnected/.test(String(e.data?.reason ?? "")),
      ),
    );
    await startAgent();
    const again = client();
    await again.connect();
    expect((await again.query("SELECT 2 AS n")).rows).toEqual([{ n: 2 }]);
    await again.end();
  });

  it("spreads sessions over two instances of one agent, and fails over when one goes", async () => {
    const second = await startAgent();
    expect(gateway.agents.status()[0]?.instances).toHaveLength(2);
    const clients = [client(), client(), client(), client()];
    for (const c of clients) await c.connect();
    const used = new Set(
      (await audit("session.route")).slice(-4).map((r) => String((r.data as { instance: string }).instance)),
    );
    expect(used.size).toBe(2);
    for (const c of clients) await c.end();
    await second.stop();
    agents.splice(agents.indexOf(second), 1);
    const c = client();
    await c.connect();
    expect((await c.query("SELECT 3 AS n")).rows).toEqual([{ n: 3 }]);
    await c.end();
  });
});
