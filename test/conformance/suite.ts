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
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/core/evidence/audit-event.js";
import { readRecording } from "../../src/core/evidence/recorder.js";
import { generateStaticToken } from "../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../src/core/policy/loader.js";
import type { SessionRefusedError } from "../../src/core/session/gate.js";
import { Gateway } from "../../src/server/gateway.js";
import { gatewayYaml } from "../support/gateway-config.js";
import { failAuditCommits } from "../support/recording-faults.js";
import type { ClientOutcome, ConformanceDriver } from "./driver.js";

export function describeConformance(drivers: ConformanceDriver[]): void {
  let gateway: Gateway;
  let dir: string;
  const logs: string[] = [];
  const bot = generateStaticToken();
  const stranger = generateStaticToken();
  /** Everything every client was shown in this file, for the credential check at the end. */
  const shown: string[] = [];
  const seen = (o: ClientOutcome): ClientOutcome => (shown.push(o.shown), o);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "gatehouse-conformance-"));
    for (const d of drivers) await d.start?.();
    const yaml = gatewayYaml({
      data: dir,
      tokens: [
        { name: "ci-bot", sha256: bot.sha256, groups: ["ci"] },
        { name: "stranger", sha256: stranger.sha256, groups: ["web"] },
      ],
      connections: drivers.map((d) => d.connectionsYaml()),
      // adapters that share a listener share its settings: each text once
      top: [...new Set(drivers.map((d) => d.topYaml ?? ""))].join("\n"),
    });
    gateway = await Gateway.start(parseConfig(yaml, { source: "conformance.yaml", baseDir: dir }), {
      apiListen: { host: "127.0.0.1", port: 0 },
      listen: Object.fromEntries(drivers.map((d) => [d.adapter.listenKey, { host: "127.0.0.1", port: 0 }])),
      log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`),
    });
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop("test");
    for (const d of drivers) await d.stop?.();
    rmSync(dir, { recursive: true, force: true });
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
  });
}
