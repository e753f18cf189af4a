/**
 * The adapter conformance suite: the core's invariants, checked the same way for every protocol adapter through
 * its real clients (test/conformance/drivers). One gateway serves every adapter under test.
 *
 * - evidence before forward: an allowed request reaches the target with its audit record and recording event;
 * - the refusal shape: a denied request never reaches the target, the client gets the adapter's own answer for
 *   it, and the evidence is a `request.blocked` record with the rule, plus the request event with the decision;
 * - fail closed: while audit records cannot be written, requests of open sessions and new sessions are refused
 *   with the adapter's answers and nothing reaches the target; once evidence is back, the same session works;
 * - session refusals (unknown connection, no access, a connection of another protocol) get their answers, with
 *   no session.start;
 * - no credential the gateway holds for a target reaches any byte a client is shown, or the gateway's log.
 *
 * With `{ viaAgent: true }` every connection is reached through one agent (`via: agent/conformance`, a
 * GatehouseAgent in this process that dials the gateway's agent listener): the same invariants then show that
 * guardrails, masking and recording behave exactly as direct. The allowed request's session also names the agent
 * (`session.route`), and while the agent is offline a new session is refused at once with the adapter's answer for
 * an unreachable target.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { GatehouseAgent } from "../../src/agent/agent.js";
import { parseAgentConfig } from "../../src/agent/config.js";
import type { AuditRecord } from "../../src/core/evidence/audit-event.js";
import { readRecording } from "../../src/core/evidence/recorder.js";
import { generateStaticToken } from "../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../src/core/policy/loader.js";
import { openEvidenceReader } from "../../src/core/store/open.js";
import type { ConnectionConfig } from "../../src/core/policy/schema.js";
import type { SessionRefusedError } from "../../src/core/session/gate.js";
import { Gateway } from "../../src/server/gateway.js";
import { gatewayYaml } from "../support/gateway-config.js";
import { failAuditCommits } from "../support/recording-faults.js";
import type { ClientOutcome, ConformanceDriver } from "./driver.js";
import { eventually } from "./eventually.js";

export interface ConformanceOptions {
  /** Reach every connection through an agent started by the suite (`via: agent/conformance`). */
  viaAgent?: boolean;
}

/** The agent's name in via-agent runs. */
const AGENT = "conformance";
/** How often gateway and agent prove they are alive: long enough that a busy test machine never misses one. */
const HEARTBEAT = "5s";

/**
 * The gateway config with every connection routed through the agent: `via` added to each connection, whatever
 * YAML its driver wrote, plus the agent listener (its port is the test's override) and the agent's token hash.
 */
function routedThroughAgent(text: string, agentSha256: string): string {
  const doc = YAML.parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new Error(`the conformance config is not valid YAML: ${doc.errors[0]?.message}`);
  const connections = doc.get("connections");
  if (!YAML.isSeq(connections)) throw new Error("the conformance config has no connections list");
  for (const item of connections.items) {
    if (!YAML.isMap(item)) throw new Error("a conformance connection is not a mapping");
    item.set("via", `agent/${AGENT}`);
  }
  doc.setIn(["listen", "agents"], "127.0.0.1:1");
  doc.set("agents", doc.createNode({ heartbeat: HEARTBEAT, tokens: [{ name: AGENT, sha256: agentSha256 }] }));
  return doc.toString({ lineWidth: 0 });
}

/** host:port of a URL, with the scheme's default port (as the HTTP adapter's target client dials it). */
function urlEndpoint(url: string): { host: string; port: number } {
  const u = new URL(url);
  const port = u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port };
}

/** The target the gateway dials for a connection: what the agent must be configured to reach for it. */
function targetEndpoint(c: ConnectionConfig): { host: string; port: number } {
  switch (c.type) {
    case "postgres":
    case "mysql":
    case "ssh":
      return { host: c.target.host, port: c.target.port };
    case "http":
      return urlEndpoint(c.target.url);
    case "kubernetes":
      return urlEndpoint(c.target.server);
  }
}

/**
 * A gateway stopped while its agent was connected left clean evidence: no session ended because its agent went
 * away, and the agent's departure ("gateway stopped") was recorded before gateway.stop, the last record.
 */
async function expectCleanStop(dataDir: string): Promise<void> {
  const store = await openEvidenceReader(dataDir);
  try {
    const all = await store.readAudit({ fromSeq: 1, limit: 1_000_000 });
    const lost = all.filter((r) => r.type === "session.end" && /agent/.test(String(r.data?.reason ?? "")));
    expect(lost, "sessions ended by their agent's departure").toEqual([]);
    expect(all.at(-1)?.type).toBe("gateway.stop");
    const departed = all.findLast((r) => r.type === "agent.disconnected");
    expect(departed?.data).toMatchObject({ agent: AGENT, reason: "gateway stopped" });
    const lastEnd = all.findLast((r) => r.type === "session.end");
    expect(Number(departed?.seq)).toBeGreaterThan(Number(lastEnd?.seq ?? 0));
  } finally {
    await store.close();
  }
}

export function describeConformance(drivers: ConformanceDriver[], options: ConformanceOptions = {}): void {
  const viaAgent = options.viaAgent === true;
  let gateway: Gateway;
  let agent: GatehouseAgent | undefined;
  const agentToken = generateStaticToken();
  let dir: string;
  const logs: string[] = [];
  const bot = generateStaticToken();
  const stranger = generateStaticToken();
  /** Everything every client was shown in this file, for the credential check at the end. */
  const shown: string[] = [];
  const seen = (o: ClientOutcome): ClientOutcome => (shown.push(o.shown), o);

  /** An agent serving every connection of the config, once the gateway has put it in service. */
  const startAgent = async (): Promise<GatehouseAgent> => {
    const endpoint = gateway.agentEndpoint;
    if (!endpoint) throw new Error("the gateway has no agent listener");
    const config = parseAgentConfig(
      JSON.stringify({
        name: AGENT,
        token: agentToken.token,
        gateway: { address: endpoint.address, pin: endpoint.pin },
        heartbeat: HEARTBEAT,
        reconnect: { min: "100ms", max: "1s" },
        connections: gateway.config.connections.map((c) => ({ name: c.name, target: targetEndpoint(c) })),
      }),
      { source: "conformance-agent.yaml" },
    );
    const started = new GatehouseAgent(config, {
      version: "test",
      log: (msg, fields) => logs.push(`agent: ${msg} ${JSON.stringify(fields ?? {})}`),
    });
    const connected = new Promise((resolve, reject) => {
      started.once("connected", resolve);
      started.once("refused", (why: string) => reject(new Error(`the gateway refused the agent: ${why}`)));
    });
    started.start();
    try {
      await connected;
      // the agent acknowledges welcome before the gateway puts it in service
      const listed = await eventually(
        () => gateway.agents.status().some((a) => a.instances.some((i) => i.instance === started.instance)),
        10_000,
      );
      if (!listed) throw new Error("the gateway did not list the agent");
    } catch (err) {
      await started.stop();
      throw err;
    }
    return started;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "gatehouse-conformance-"));
    for (const d of drivers) await d.start?.();
    const generated = gatewayYaml({
      data: dir,
      tokens: [
        { name: "ci-bot", sha256: bot.sha256, groups: ["ci"] },
        { name: "stranger", sha256: stranger.sha256, groups: ["web"] },
      ],
      connections: drivers.map((d) => d.connectionsYaml()),
      // adapters that share a listener share its settings: each text once
      top: [...new Set(drivers.map((d) => d.topYaml ?? ""))].join("\n"),
    });
    const yaml = viaAgent ? routedThroughAgent(generated, agentToken.sha256) : generated;
    gateway = await Gateway.start(parseConfig(yaml, { source: "conformance.yaml", baseDir: dir }), {
      apiListen: { host: "127.0.0.1", port: 0 },
      listen: Object.fromEntries(drivers.map((d) => [d.adapter.listenKey, { host: "127.0.0.1", port: 0 }])),
      ...(viaAgent ? { agentsListen: { host: "127.0.0.1", port: 0 } } : {}),
      log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`),
    });
    if (viaAgent) agent = await startAgent();
  }, 60_000);

  afterAll(async () => {
    // the gateway first: its sessions end while their agent still carries them (a clean session.end, not "target
    // lost"), and closing its agent listener records agent.disconnected before gateway.stop
    await gateway?.stop("test");
    await agent?.stop();
    for (const d of drivers) await d.stop?.();
    try {
      if (viaAgent && gateway) await expectCleanStop(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const port = (d: ConformanceDriver): number => {
    const address = gateway.address(d.protocol) ?? "";
    return Number(address.slice(address.lastIndexOf(":") + 1));
  };
  const marker = (what: string) => `gh_conf_${what}_${randomUUID().slice(0, 8)}`;
  const auditWith = async (text: string): Promise<AuditRecord[]> => {
    await gateway.recorder.flush();
    const all = await gateway.store.readAudit({ fromSeq: 1, limit: 1_000_000 });
    return all.filter((r) => JSON.stringify(r.data ?? {}).includes(text));
  };
  const routes = async (): Promise<AuditRecord[]> => {
    await gateway.recorder.flush();
    const all = await gateway.store.readAudit({ fromSeq: 1, limit: 1_000_000 });
    return all.filter((r) => r.type === "session.route");
  };

  describe.each(drivers)("$protocol adapter", (d) => {
    it("forwards an allowed request only with its audit record and its recording event", async () => {
      const m = marker("allow");
      const out = seen(await d.once(port(d), d.connection, bot.token, d.allowed(m)));
      expect(out.ok, out.shown).toBe(true);
      expect(await d.targetSaw(m)).toBe(true);
      const [record, ...more] = await auditWith(m);
      expect(more).toEqual([]);
      expect(record).toMatchObject({
        type: "request",
        decision: "allow",
        connection: d.connection,
        identity: { subject: "ci-bot" },
        data: { protocol: d.protocol, text: d.allowed(m) },
      });
      const events = [];
      for await (const e of readRecording(gateway.store, String(record?.session_id))) events.push(e);
      const request = events.find((e) => e.kind === "request");
      expect(request?.data).toMatchObject({ text: d.allowed(m), decision: { outcome: "allow" } });
      if (viaAgent) {
        // the session's evidence names the agent that carried it, before a byte of the request crossed it
        const ofSession = (await gateway.store.readAudit({ fromSeq: 1, limit: 1_000_000 })).filter(
          (r) => r.session_id === record?.session_id,
        );
        const route = ofSession.find((r) => r.type === "session.route");
        expect(route).toMatchObject({
          connection: d.connection,
          data: { via: `agent/${AGENT}`, agent: AGENT, instance: agent?.instance, purpose: "session" },
        });
        const at = ofSession.findIndex((r) => r.seq === route?.seq);
        const request = ofSession.findIndex((r) => r.seq === record?.seq);
        const order = ofSession.map((r) => r.type).join(", ");
        if (d.dialsPerRequest) {
          // the target stream is opened to forward the request (evidence of the request first, then of its route)
          expect(at, order).toBe(request + 1);
        } else {
          // the target stream is opened as the session starts: the route precedes every request
          expect(route?.seq, order).toBeLessThan(Number(record?.seq));
        }
      }
    });

    it("refuses a denied request with the adapter's answer; it never reaches the target; the evidence names the rule", async () => {
      const m = marker("deny");
      const out = seen(await d.once(port(d), d.connection, bot.token, d.denied(m)));
      expect(out.ok).toBe(false);
      expect(out.answer).toBe(d.adapter.refusals.request.denied);
      expect(await d.targetSaw(m)).toBe(false);
      const [record] = await auditWith(m);
      expect(record).toMatchObject({
        type: "request.blocked",
        decision: "deny",
        rule: expect.stringMatching(/^connections\[\d+\]\.guardrails\[0\]$/) as unknown,
        data: { protocol: d.protocol, text: d.denied(m) },
      });
      const events = [];
      for await (const e of readRecording(gateway.store, String(record?.session_id))) events.push(e);
      expect(events.find((e) => e.kind === "request")?.data).toMatchObject({
        text: d.denied(m),
        decision: { outcome: "deny", rule: record?.rule },
      });
    });

    it("fails closed while audit records cannot be written, and resumes in the same session afterwards", async () => {
      const session = await d.open(port(d), d.connection, bot.token);
      try {
        const warm = marker("warm");
        seen(await session.run(d.allowed(warm)));
        const fault = failAuditCommits(gateway.store);
        try {
          const m = marker("outage");
          const refused = seen(await session.run(d.allowed(m)));
          expect(refused.ok).toBe(false);
          expect(refused.answer).toBe(d.adapter.refusals.request.evidence_unavailable);
          expect(refused.shown).toMatch(/evidence unavailable/);
          expect(await d.targetSaw(m)).toBe(false);
          const newcomer = seen(await d.once(port(d), d.connection, bot.token, d.allowed(marker("newcomer"))));
          expect(newcomer.ok).toBe(false);
          expect(newcomer.answer).toBe(d.adapter.refusals.session.evidence_unavailable);
          expect(fault.refused).toBeGreaterThan(0);
        } finally {
          fault.restore();
        }
        const m = marker("after");
        const after = seen(await session.run(d.allowed(m)));
        expect(after.ok, after.shown).toBe(true);
        expect(await d.targetSaw(m)).toBe(true);
        // the same session: a client that quietly reconnected (a new session) would not show it resumes
        const [before] = await auditWith(warm);
        const [resumed] = await auditWith(m);
        expect(before?.session_id).toBeDefined();
        expect(resumed?.session_id).toBe(before?.session_id);
        if (viaAgent) {
          // one stream through the agent served the whole session: its target connection was kept between requests
          const carried = (await routes()).filter((r) => r.session_id === before?.session_id);
          expect(carried).toHaveLength(1);
        }
      } finally {
        await session.close();
      }
    });

    it("answers session refusals in its own protocol and writes no session.start", async () => {
      const before = (await gateway.store.readAudit({ fromSeq: 1, limit: 1_000_000 })).length;
      const other = drivers.find((o) => o !== d)?.connection ?? "no-such-connection";
      const cases: { connection: string; token: string; code: SessionRefusedError["code"] }[] = [
        { connection: "no-such-connection", token: bot.token, code: "unknown_connection" },
        { connection: d.connection, token: stranger.token, code: "no_access" },
      ];
      if (other !== "no-such-connection") cases.push({ connection: other, token: bot.token, code: "wrong_protocol" });
      for (const c of cases) {
        const m = marker(c.code);
        const out = seen(await d.once(port(d), c.connection, c.token, d.allowed(m)));
        expect(out.ok, c.code).toBe(false);
        expect(out.answer, c.code).toBe(d.adapter.refusals.session[c.code]);
        expect(await d.targetSaw(m)).toBe(false);
      }
      const added = (await gateway.store.readAudit({ fromSeq: before + 1, limit: 1_000_000 })).map((r) => r.type);
      expect(added.filter((t) => t === "session.refused")).toHaveLength(cases.length);
      expect(added).not.toContain("session.start");
    });

    it("never shows a client, or writes to its log, a credential it holds for a target", async () => {
      // a target that refuses the held credential: the error the client gets must not quote it
      const out = seen(await d.once(port(d), `${d.connection}-badcred`, bot.token, d.allowed(marker("badcred"))));
      expect(out.ok).toBe(false);
      const everything = [...shown, ...logs].join("\n");
      expect(shown.length).toBeGreaterThan(3);
      for (const secret of d.secrets()) expect(everything.includes(secret), `a held credential was shown`).toBe(false);
    });

    // last of each adapter's cases: it stops the agent, and starts a fresh one for the next adapter's
    if (viaAgent)
      it("refuses a new session at once while its agent is offline; nothing reaches the target", async () => {
        await agent?.stop();
        agent = undefined;
        try {
          const offline = await eventually(
            () => gateway.agents.status().every((a) => a.state === "offline" && a.instances.length === 0),
            10_000,
          );
          expect(offline, "the gateway still lists the stopped agent").toBe(true);
          const routed = (await routes()).length;
          const m = marker("offline");
          const asked = Date.now();
          const out = seen(await d.once(port(d), d.connection, bot.token, d.allowed(m)));
          // at once: well within the client's own timeout, so nothing waited for the agent to come back
          expect(Date.now() - asked).toBeLessThan(8_000);
          expect(out.ok, out.shown).toBe(false);
          expect(out.answer, out.shown).toBe(d.unreachable);
          expect(out.shown).toMatch(new RegExp(`reached via agent ${AGENT}, which is not connected`));
          expect(await d.targetSaw(m)).toBe(false);
          expect((await routes()).length).toBe(routed);
        } finally {
          // later tests (the next adapter's) need the agent back
          agent = await startAgent();
        }
      });
  });
}
