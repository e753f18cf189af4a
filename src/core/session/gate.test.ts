import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { cleanupDirs, openEvidenceStack, slowRecordingWrites, tempDir } from "../../../test/support/evidence.js";
import { failAuditCommits } from "../../../test/support/recording-faults.js";
import type { AuditRecord } from "../evidence/audit-event.js";
import { readRecording, readStoredRecording } from "../evidence/recorder.js";
import { verifyEvidence } from "../evidence/verify.js";
import type { Identity } from "../identity/identity.js";
import { CompiledPolicy } from "../policy/decide.js";
import { factsFrom } from "../policy/facts.js";
import { parseConfig } from "../policy/loader.js";
import type { Store } from "../store/types.js";
import { Gate, RECORDED_TEXT_LIMIT, SessionRefusedError, type ApprovalHandler } from "./gate.js";

const CONFIG = `
connections:
  - name: app-db
    type: postgres
    target: { host: 127.0.0.1, port: 5432, user: app, password: x }
    access: [group:ci]
    guardrails:
      - deny: { statements: [drop, truncate] }
    approvals:
      - require: { statements: [alter_table] }
        approvers: [group:dba]
`;

const ciBot: Identity = { subject: "ci-bot", kind: "bot", groups: ["ci"], issuer: "gatehouse", tokenId: "ci-bot" };
const stranger: Identity = { ...ciBot, subject: "intruder", groups: ["web"], tokenId: "intruder" };

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  cleanupDirs();
});

async function setup(
  options: { approvals?: ApprovalHandler; wrap?: (s: Store) => Store; highWaterBytes?: number; legacy?: boolean } = {},
) {
  const { store, audit, recorder, signingKey, close } = await openEvidenceStack(tempDir("gatehouse-gate-"), {
    wrap: options.wrap,
    ...(options.legacy ? { store: { legacy: true } } : {}),
    recorder: { flushIntervalMs: 10, highWaterBytes: options.highWaterBytes },
  });
  closers.push(close);
  const policy = CompiledPolicy.for(parseConfig(CONFIG, { source: "test.yaml" }));
  const gate = new Gate({ policy, audit, recorder, ...(options.approvals ? { approvals: options.approvals } : {}) });
  return { gate, store, audit, recorder, signingKey };
}

/** The decision a request event records for `select`: allowed by the connection's access list. */
const ALLOWED = { outcome: "allow", rule: "connections[0].access", summary: "access via group:ci" };

const select = { text: "select 1", facts: factsFrom({ statements: [{ kind: "select", tables: [] }] }) };
const drop = { text: "drop table users", facts: factsFrom({ statements: [{ kind: "drop", tables: ["users"] }] }) };
const alter = {
  text: "alter table users add column x int",
  facts: factsFrom({ statements: [{ kind: "alter_table", tables: ["users"] }] }),
};

describe("Gate", () => {
  it("makes session.start durable before handing out a session, and records allowed requests first", async () => {
    const { gate, store } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const started = await store.lastAudit();
    expect(started).toMatchObject({ type: "session.start", session_id: session.id, decision: "allow" });
    expect(started?.identity).toEqual({
      subject: "ci-bot",
      kind: "bot",
      groups: ["ci"],
      issuer: "gatehouse",
      token_id: "ci-bot",
    });

    const admission = await session.admit(select);
    expect(admission.forward).toBe(true);
    // the record the adapter is told about is already in the store
    const stored = await store.lastAudit();
    expect(stored).toMatchObject({
      type: "request",
      decision: "allow",
      data: { protocol: "postgres", text: "select 1" },
    });
    expect(admission.forward && admission.record.seq).toBe(stored?.seq);
  });

  it("refuses a session without access and records the refusal with its rule", async () => {
    const { gate, store } = await setup();
    const err = await gate
      .openSession({ identity: stranger, connection: "app-db", protocol: "postgres" })
      .catch((e) => e);
    expect(err).toBeInstanceOf(SessionRefusedError);
    expect(err.code).toBe("no_access");
    expect(await store.lastAudit()).toMatchObject({ type: "session.refused", rule: "connections[0].access" });

    const unknown = await gate
      .openSession({ identity: ciBot, connection: "nope", protocol: "postgres" })
      .catch((e) => e);
    expect(unknown.code).toBe("unknown_connection");
  });

  it("an adapter's own refusal is written like a denial: request.blocked with the reason, and the request event", async () => {
    const { gate, store, signingKey } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const record = await session.refuse(
      { text: "copy users to stdout", data: { statement: "s1" } },
      { reason: "COPY TO STDOUT cannot be masked", rule: "connections[0].masking", stage: "output" },
    );
    expect(record).toMatchObject({
      type: "request.blocked",
      decision: "deny",
      rule: "connections[0].masking",
      data: {
        protocol: "postgres",
        text: "copy users to stdout",
        statement: "s1",
        reason: "COPY TO STDOUT cannot be masked",
        stage: "output",
      },
    });
    expect(session.requestCount).toBe(1);
    await session.close("client closed");
    const events = [];
    for await (const e of readRecording(store, session.id)) events.push(e);
    expect(events[0]).toMatchObject({
      kind: "request",
      data: {
        text: "copy users to stdout",
        decision: { outcome: "deny", rule: "connections[0].masking", reason: "COPY TO STDOUT cannot be masked" },
      },
    });
    expect((await verifyEvidence(store, { publicKey: signingKey.publicKey })).ok).toBe(true);
  });

  it("adapter data can never replace the protocol or the redacted text, in the audit record or the recording", async () => {
    const { gate, store } = await setup({ highWaterBytes: 1 });
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const forged = { text: "select 'clear secret'", protocol: "ssh" };
    const shown = { text: "select $1", shown: { text: "select '***'" }, data: forged };
    const admitted = await session.admit({ ...select, ...shown });
    const refused = await session.refuse(shown, { reason: "no" });
    for (const r of [admitted.record, refused])
      expect(r?.data).toMatchObject({ protocol: "postgres", text: "select '***'" });
    await session.close("client closed");
    // highWaterBytes 1: the recorder is always behind, so both events carry the request itself, not a reference
    const stored = await store.readRecordingEvents(session.id);
    const requests = stored.filter((e) => e.kind === "request");
    expect(requests).toHaveLength(2);
    for (const e of requests) expect(e.data).toMatchObject({ text: "select '***'" });
    expect(JSON.stringify(stored)).not.toContain("clear secret");
  });

  it("refuses a connection of another protocol before session.start, and records the refusal", async () => {
    const { gate, store } = await setup();
    const err = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "ssh" }).catch((e) => e);
    expect(err).toBeInstanceOf(SessionRefusedError);
    expect(err.code).toBe("wrong_protocol");
    expect(err.message).toBe('connection "app-db" is a postgres connection, not ssh');
    const all = await store.readAudit({ fromSeq: 1, limit: 100 });
    expect(all.filter((r) => r.type === "session.start")).toEqual([]);
    expect(all.at(-1)).toMatchObject({ type: "session.refused", connection: "app-db", data: { protocol: "ssh" } });
  });

  it("blocks a denied request with the rule that matched and never says forward", async () => {
    const { gate, store } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const admission = await session.admit(drop);
    expect(admission).toMatchObject({ forward: false, kind: "denied", rule: { path: "connections[0].guardrails[0]" } });
    expect(await store.lastAudit()).toMatchObject({
      type: "request.blocked",
      decision: "deny",
      rule: "connections[0].guardrails[0]",
      data: { text: "drop table users" },
    });
  });

  it("refuses a request that needs approval when no workflow is configured", async () => {
    const { gate } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const admission = await session.admit(alter);
    expect(admission.forward).toBe(false);
    expect(!admission.forward && admission.message).toMatch(/no approval workflow/);
  });

  it("forwards a held request only when the approval handler approves it", async () => {
    let verdict = true;
    const approvals: ApprovalHandler = {
      hold: async () =>
        verdict
          ? { approved: true, approvalId: "a1", approvers: ["dba-alice"] }
          : { approved: false, approvalId: "a2", outcome: "denied", reason: "denied by dba-alice" },
    };
    const { gate, store } = await setup({ approvals });
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    expect(await session.admit(alter)).toMatchObject({ forward: true, approvalId: "a1" });
    expect(await store.lastAudit()).toMatchObject({
      type: "request",
      data: { approval_id: "a1", approvers: ["dba-alice"] },
    });
    verdict = false;
    expect(await session.admit(alter)).toMatchObject({ forward: false, kind: "approval_denied", approvalId: "a2" });
  });

  it("fails closed: when the audit log cannot write, the request is refused", async () => {
    const { gate, store } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const fault = failAuditCommits(store, new Error("disk full"));
    const admission = await session.admit(select);
    expect(admission).toMatchObject({ forward: false, kind: "evidence_unavailable" });
    expect(!admission.forward && admission.message).toMatch(/evidence unavailable/);
    fault.restore();
    expect((await session.admit(select)).forward).toBe(true);
    await session.close("client closed");
  });

  it("closes with session.end and a sealed recording that verifies", async () => {
    const { gate, store, signingKey } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    await session.admit(select);
    await session.admit(drop);
    await session.close("client closed");
    expect(await store.lastAudit()).toMatchObject({
      type: "session.end",
      data: { reason: "client closed", requests: 2 },
    });
    const events: { kind: string; decision?: unknown }[] = [];
    for await (const e of readRecording(store, session.id)) {
      events.push({ kind: e.kind, decision: (e.data as { decision?: unknown } | null)?.decision });
    }
    // one event per request, carrying its decision
    expect(events).toMatchObject([
      { kind: "request", decision: { outcome: "allow" } },
      { kind: "request", decision: { outcome: "deny", rule: expect.any(String) as unknown } },
    ]);
    expect((await store.getSession(session.id))?.seal?.reason).toBe("client closed");
    const report = await verifyEvidence(store, { publicKey: signingKey.publicKey });
    expect(report.ok).toBe(true);
  });

  it("waits for a recorder past its high-water mark before forwarding, so no event is dropped", async () => {
    // every recording write takes 30 ms and the high-water mark (64 bytes) is below one event, as is the hard limit
    // (4 x 64): each admit must wait for a write, and an event bigger than the limit must still be recorded
    const { gate, store, recorder } = await setup({ wrap: slowRecordingWrites(30), highWaterBytes: 64 });
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    for (let i = 0; i < 20; i++) {
      const admission = await session.admit(i % 2 ? drop : select);
      // an admit hands the request over only once the recorder is below its mark again
      expect(recorder.bufferedBytes).toBeLessThan(64);
      expect(admission.forward).toBe(i % 2 === 0);
    }
    await session.close("client closed");
    const kinds: string[] = [];
    for await (const e of readRecording(store, session.id)) kinds.push(e.kind);
    expect(kinds).toEqual(Array.from({ length: 20 }, () => "request"));
  });

  it("records a held request's text over 1 MiB as its head, length and SHA-256 (the audit record keeps it whole)", async () => {
    const approvals: ApprovalHandler = { hold: async () => ({ approved: true, approvalId: "a1", approvers: ["dba"] }) };
    const { gate, store } = await setup({ approvals });
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const text = `alter table users add column x int default '${"x".repeat(RECORDED_TEXT_LIMIT + 10)}'`;
    const admission = await session.admit({ ...alter, text });
    if (!admission.forward) throw new Error(`refused: ${admission.message}`);
    expect(admission.record.data?.["text"]).toBe(text);
    await session.close("client closed");
    const events = [];
    for await (const e of readRecording(store, session.id)) events.push(e);
    const data = events[0]?.data as { text: string; text_length: number; text_sha256: string };
    expect(data.text_length).toBe(text.length);
    expect(data.text_sha256).toBe(createHash("sha256").update(text).digest("hex"));
    expect(data.text).toBe(`${text.slice(0, RECORDED_TEXT_LIMIT)}…`);
  });

  it("records an allowed or denied request's event as a reference to its audit record, resolved for readers", async () => {
    const { gate, store, signingKey } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const allowed = await session.admit({ ...select, data: { message: "query" }, shown: { text: "select /*x*/ 1" } });
    const denied = await session.admit(drop);
    const big = `select '${"x".repeat(RECORDED_TEXT_LIMIT + 10)}'`;
    const whole = await session.admit({ ...select, text: big });
    await session.close("client closed");
    const records = [allowed, denied, whole].map((a) => a.record!);
    // as stored: the reference and the decision, not the text or data a second time
    const stored = [];
    for await (const e of readStoredRecording(store, session.id)) stored.push(e);
    expect(stored.map((e) => e.data)).toEqual([
      { audit: { hash: records[0]!.hash, seq: records[0]!.seq, writer: store.writer }, decision: ALLOWED },
      {
        audit: { hash: records[1]!.hash, seq: records[1]!.seq, writer: store.writer },
        decision: {
          outcome: "deny",
          rule: "connections[0].guardrails[0]",
          summary: expect.any(String) as unknown,
          reason: expect.any(String) as unknown,
        },
      },
      { audit: { hash: records[2]!.hash, seq: records[2]!.seq, writer: store.writer }, decision: ALLOWED },
    ]);
    // as read: the audit record's request members (the redacted text, the adapter's data) with the decision
    const read = [];
    for await (const e of readRecording(store, session.id)) read.push(e);
    expect(read.map((e) => e.data)).toMatchObject([
      { text: "select /*x*/ 1", message: "query", decision: { outcome: "allow" }, audit: { seq: records[0]!.seq } },
      { text: "drop table users", decision: { outcome: "deny" } },
      { text: big },
    ]);
    expect(read.map((e) => e.hash)).toEqual(stored.map((e) => e.hash));
    expect((await verifyEvidence(store, { publicKey: signingKey.publicKey })).ok).toBe(true);
  });

  it("refers to audit records of the legacy chain in a store from before the evidence log, and verifies them", async () => {
    const { gate, store, signingKey } = await setup({ legacy: true });
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const admission = await session.admit(select);
    await session.close("client closed");
    const [event] = await store.readRecordingEvents(session.id);
    expect(event?.data).toEqual({
      audit: { hash: admission.record!.hash, seq: admission.record!.seq },
      decision: ALLOWED,
    });
    const read = [];
    for await (const e of readRecording(store, session.id)) read.push(e);
    expect(read[0]?.data).toMatchObject({ text: "select 1" });
    expect((await verifyEvidence(store, { publicKey: signingKey.publicKey })).ok).toBe(true);
  });

  it("fails verify for a request event whose reference does not resolve (legacy chain)", async () => {
    const { gate, store, recorder, signingKey } = await setup({ legacy: true });
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const other = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const mine = await session.admit(select);
    const theirs = await other.admit(select);
    // a well-chained, sealed recording whose references are wrong (as a faulty or forging writer would leave it)
    const record = (audit: unknown) => session.recording.record("request", { audit, decision: { outcome: "allow" } });
    record({ hash: "0".repeat(64), seq: mine.record!.seq });
    record({ hash: theirs.record!.hash, seq: theirs.record!.seq });
    record({ hash: mine.record!.hash, seq: 9999 });
    await session.close("client closed");
    await other.close("client closed");
    await recorder.flush();
    const report = await verifyEvidence(store, { publicKey: signingKey.publicKey });
    expect(report.ok).toBe(false);
    expect(report.bad_sessions).toEqual([
      {
        session_id: session.id,
        message: `session ${session.id}: event 2: its audit reference does not resolve: the record at the legacy chain seq ${mine.record!.seq} has another hash`,
      },
    ]);
  });

  it("refuses an allowed request whose event cannot be taken once its record is written, and audits the refusal", async () => {
    const { gate, store } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const pending = session.admit(select);
    // the recording is sealed while the audit record is being written (the recorder had room when admit began)
    const sealed = session.recording.seal("client closed");
    const admission = await pending;
    await sealed;
    expect(admission).toMatchObject({ forward: false, kind: "evidence_unavailable" });
    const [allowed, refused] = (await store.tailAudit(2)) as [AuditRecord, AuditRecord];
    expect(allowed).toMatchObject({ type: "request", decision: "allow", data: { text: "select 1" } });
    expect(refused).toMatchObject({
      type: "request.refused",
      session_id: session.id,
      data: { request: { hash: allowed.hash, seq: allowed.seq }, reason: expect.stringMatching(/sealed/) as unknown },
    });
  });

  it("keeps the request's text in its event when its audit record could not be written", async () => {
    const { gate, store } = await setup();
    const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
    const fault = failAuditCommits(store, new Error("disk full"));
    expect(await session.admit(select)).toMatchObject({ forward: false, kind: "evidence_unavailable" });
    fault.restore();
    await session.close("client closed");
    const events = [];
    for await (const e of readStoredRecording(store, session.id)) events.push({ kind: e.kind, data: e.data });
    expect(events).toEqual([
      { kind: "request", data: { text: "select 1", decision: ALLOWED } },
      { kind: "notice", data: { refused: expect.stringMatching(/disk full/) as unknown } },
    ]);
  });
});
