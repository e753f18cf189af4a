/**
 * The session recorder's store fails while a session waits for it (back-pressure above the recorder's 4 MiB
 * high-water mark). Expected (docs/evidence.md, "Fail closed and recovery"): the client gets an error it can read
 * within seconds, never a silent hang; nothing reaches the target without its evidence; nothing recorded is lost,
 * and once the store is back the recording is complete, sealed and verifies.
 *
 * A running gateway's recording writes are made to fail (test/support/recording-faults.ts) while its audit log
 * keeps writing, so the recorder's own failure is what the sessions meet.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { readRecording } from "../../../src/core/evidence/recorder.js";
import type { RecordingEvent } from "../../../src/core/evidence/records.js";
import { verifyEvidence } from "../../../src/core/evidence/verify.js";
import type { Store } from "../../../src/core/store/types.js";
import { failRecordingWrites, type RecordingFault } from "../../support/recording-faults.js";
import { startHarness, statementLog, type Harness } from "../postgres/harness.js";
import { startSshHarness, type SshHarness } from "../ssh/harness.js";

const RUN = `stall-${randomUUID().slice(0, 8)}`;
const CAUSE = "recording unavailable: SQLITE_IOERR: disk I/O error";

let fault: RecordingFault | undefined;
afterEach(() => {
  // the gateways must be able to write their evidence again to stop
  fault?.restore();
  fault = undefined;
});

/** The session a request with this marker was sent in, and that session's audit records. */
async function auditOfSession(store: Store, marker: string): Promise<{ sessionId: string; records: AuditRecord[] }> {
  const all: AuditRecord[] = [];
  for await (const r of store.iterateAudit()) all.push(r);
  const sessionId = all.find((r) => r.type === "request" && textOf(r.data).includes(marker))?.session_id;
  expect(sessionId, `no request with ${marker} was audited`).toBeDefined();
  return { sessionId: sessionId ?? "", records: all.filter((r) => r.session_id === sessionId) };
}

const textOf = (data: unknown): string => String((data as { text?: unknown } | null | undefined)?.text ?? "");

/** The session's recording once it is sealed: the seal is written when the recorder's store takes writes again. */
async function sealedRecording(
  store: Store,
  sessionId: string,
): Promise<{ reason?: string; events: RecordingEvent[] }> {
  let seal = (await store.getSession(sessionId))?.seal;
  for (let i = 0; i < 100 && !seal; i++) {
    await new Promise((r) => setTimeout(r, 100));
    seal = (await store.getSession(sessionId))?.seal;
  }
  expect(seal, `session ${sessionId} was not sealed`).toBeDefined();
  const events: RecordingEvent[] = [];
  for await (const e of readRecording(store, sessionId)) events.push(e);
  expect(events).toHaveLength(seal?.count ?? -1);
  return { ...(seal ? { reason: seal.reason } : {}), events };
}

/** Runs `query` until it fails (at most `max` times); returns the failure and how long that last run took. */
async function untilRefused(max: number, query: (i: number) => Promise<unknown>) {
  for (let i = 0; i < max; i++) {
    const started = Date.now();
    const error = await query(i).then(
      () => undefined,
      (err: unknown) => err,
    );
    if (error) return { error, ms: Date.now() - started, runs: i + 1 };
  }
  return { error: undefined, ms: 0, runs: max };
}

describe("postgres: the recorder's store fails while a session waits for it", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** A pg client that gives up on a hung query (the bug this file is about) instead of the test timing out. */
  const client = (): Promise<pg.Client> => h.client("app-db", { query_timeout: 10_000 });

  it("a request over the high-water mark is refused in-protocol (42501, names the cause), the session goes on", async () => {
    const store = h.gateway.store;
    const c = await client();
    const text = (i: number | string) => `select length('${"x".repeat(1000)}') as n /* ${RUN}-q${i} */`;
    // This session's request events refer to their audit records and are small, so another recording fills the
    // recorder: 5 MiB of output before the 7th request takes it past its 4 MiB high-water mark, and it is the gate
    // that waits for the recorder, before the request's audit record.
    const filler = await h.gateway.recorder.start({
      sessionId: `${RUN}-filler`,
      connection: "app-db",
      protocol: "postgres",
    });
    fault = failRecordingWrites(store);
    const refused = await untilRefused(12, (i) => {
      if (i === 6) for (let k = 0; k < 5; k++) filler.record("output", "f".repeat(1024 * 1024));
      return c.query(text(i));
    });
    expect(refused.runs).toBe(7);
    expect(refused.error).toMatchObject({
      severity: "ERROR",
      code: "42501",
      message: `gatehouse: evidence unavailable, request refused: ${CAUSE}`,
    });
    expect(refused.ms).toBeLessThan(5000);
    // still usable in-protocol, and refused the same way while the store fails
    await expect(c.query(text("again"))).rejects.toMatchObject({ code: "42501" });

    fault.restore();
    expect((await c.query(`select 'after' as v /* ${RUN}-q-after */`)).rows).toEqual([{ v: "after" }]);
    await c.end();
    await filler.seal("filled the recorder");

    const marker = (i: number | string) => `/* ${RUN}-q${i} */`;
    const allowed = [0, 1, 2, 3, 4, 5, "-after"].map(marker);
    const notForwarded = [6, "again"].map(marker);
    // the audit log: an allowing record for each forwarded request, none for the refused ones
    const { sessionId, records } = await auditOfSession(store, marker(0));
    const audited = records.filter((r) => r.type === "request").map((r) => textOf(r.data));
    expect(allowed.map((m) => audited.filter((t) => t.includes(m)).length)).toEqual(allowed.map(() => 1));
    expect(records.filter((r) => notForwarded.some((m) => textOf(r.data).includes(m)))).toEqual([]);
    // the target: exactly the allowed requests
    const logged = await statementLog(RUN);
    for (const m of allowed) expect(logged.some((l) => l.includes(m))).toBe(true);
    for (const m of notForwarded) expect(logged.some((l) => l.includes(m))).toBe(false);
    // the recording: every request with its decision (read from its audit record for those that have one, from
    // the event itself for the refused ones), each refusal noted with its cause, and nothing lost
    const { events } = await sealedRecording(store, sessionId);
    const requests = events.filter((e) => e.kind === "request").map((e) => textOf(e.data));
    expect(requests.map((t) => t.slice(t.lastIndexOf("/*")))).toEqual(
      [0, 1, 2, 3, 4, 5, 6, "again", "-after"].map(marker),
    );
    const notices = events.filter((e) => e.kind === "notice").map((e) => (e.data as { refused?: string }).refused);
    expect(notices).toEqual([1, 2].map(() => `evidence unavailable, request refused: ${CAUSE}`));
    expect(events.filter((e) => e.kind === "result")).toHaveLength(allowed.length);
    expect((await verifyEvidence(store)).ok).toBe(true);
  });

  it("a session paused for the recorder after forwarding ends with a FATAL naming the cause, not a hang", async () => {
    const store = h.gateway.store;
    const c = await client();
    const errors: unknown[] = [];
    c.on("error", (err) => errors.push(err));
    const params = Array.from({ length: 64 }, (_, i) => `$${i + 1}::text`).join(", ");
    const text = `select num_nonnulls(${params}) as n /* ${RUN}-bind */`;
    const values = Array.from({ length: 64 }, () => "v".repeat(1024));
    // one named statement: its request is admitted once, then every run is Bind/Execute/Sync with a ~66 KB bind
    // event, so the recorder passes its high-water mark at a Bind (or a result) of a request already forwarded
    expect((await c.query({ name: "wide", text, values })).rows).toEqual([{ n: 64 }]);
    fault = failRecordingWrites(store);
    const ended = await untilRefused(200, () => c.query({ name: "wide", text, values }));
    // the FATAL fails the running query, or arrives right after one the relay had already completed
    const fatal = [ended.error, ...errors].find((e) => (e as { severity?: string }).severity === "FATAL");
    expect(fatal ?? ended.error).toMatchObject({
      severity: "FATAL",
      code: "58000",
      message: `gatehouse: evidence unavailable, session ended: ${CAUSE}`,
    });
    expect(ended.ms).toBeLessThan(5000);

    // the store is back: the queued events, the seal and session.end are all there
    fault.restore();
    const { sessionId } = await auditOfSession(store, `${RUN}-bind`);
    const { reason, events } = await sealedRecording(store, sessionId);
    expect(reason).toBe("evidence unavailable");
    const { records } = await auditOfSession(store, `${RUN}-bind`);
    expect(records.at(-1)).toMatchObject({ type: "session.end", data: { reason: "evidence unavailable" } });
    // every Bind the gateway read is in the recording: each run's, and the failed run's own when the recorder
    // stalled at its Bind (at a result instead, the failed run is the next one, which the gateway no longer read)
    const binds = events.filter((e) => e.kind === "bind").length;
    expect([ended.runs, ended.runs + 1]).toContain(binds);
    expect((await verifyEvidence(store)).ok).toBe(true);
  });
});

describe("ssh: the recorder's store fails while output waits for it", () => {
  let s: SshHarness;
  beforeAll(async () => {
    s = await startSshHarness();
  }, 30_000);
  afterAll(async () => {
    await s?.stop();
  });

  it("the channel ends with the cause on stderr and exit status 1, not a hang; what was shown is recorded", async () => {
    const store = s.gateway.store;
    // only writes that carry terminal output fail: the login's session row is written as usual
    fault = failRecordingWrites(store, (w) => w.encodedEvents?.some((e) => e.kind === "output") === true);
    const started = Date.now();
    const r = await s.ssh("pw-host", `head -c 8000000 /dev/zero | tr '\\0' a; echo ${RUN}-done`, {
      timeoutMs: 15_000,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`gatehouse: evidence unavailable, session ended: ${CAUSE}`);
    expect(r.stdout).not.toContain(`${RUN}-done`);
    expect(Date.now() - started).toBeLessThan(10_000);

    fault.restore();
    const [session] = await store.listSessions({});
    const { events } = await sealedRecording(store, session?.session_id ?? "");
    const output = events.filter((e) => e.kind === "output").map((e) => (e.data as { data: string }).data);
    // what is recorded is exactly what the client was shown
    expect(output.join("")).toBe(r.stdout);
    expect((await verifyEvidence(store)).ok).toBe(true);
  });
});
