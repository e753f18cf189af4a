import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AuditLog } from "../evidence/audit-log.js";
import { SessionRecorder } from "../evidence/recorder.js";
import { verifyEvidence } from "../evidence/verify.js";
import { openStore } from "../store/open.js";
import { endInterruptedSessions, INTERRUPTED_REASON } from "./interrupted.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("endInterruptedSessions", () => {
  it("ends and seals the sessions a crashed run left open, so the evidence verifies and says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-interrupted-"));
    dirs.push(dir);
    const signingKey = generateKeyPairSync("ed25519");
    const identity = { subject: "ci-bot", kind: "bot" as const, groups: ["ci"], issuer: "gatehouse", token_id: "t" };

    // first run: two sessions, one closed properly, one cut off (no seal, no session.end)
    let store = await openStore({ dataDir: dir });
    let audit = await AuditLog.open(store, { signingKey });
    let recorder = new SessionRecorder(store, { signingKey, flushIntervalMs: 5 });
    const closed = await recorder.start({ sessionId: "s_closed", connection: "db", protocol: "postgres", identity });
    closed.record("request", { text: "select 1" });
    await closed.seal("client closed");
    const cut = await recorder.start({ sessionId: "s_cut", connection: "db", protocol: "postgres", identity });
    cut.record("request", { text: "select 2" });
    cut.record("result", { rows: 1 });
    await recorder.flush();
    await audit.close();
    await store.close();
    expect((await openAndCount(dir)).unsealed).toBe(1);

    // restart
    store = await openStore({ dataDir: dir });
    audit = await AuditLog.open(store, { signingKey });
    recorder = new SessionRecorder(store, { signingKey });
    expect(await endInterruptedSessions(store, audit, recorder)).toBe(1);
    expect(await endInterruptedSessions(store, audit, recorder)).toBe(0);
    const seal = (await store.getSession("s_cut"))?.seal;
    expect(seal).toMatchObject({ reason: INTERRUPTED_REASON, count: 2 });
    expect((await store.getSession("s_closed"))?.seal?.reason).toBe("client closed");
    expect(await store.lastAudit()).toMatchObject({
      type: "session.end",
      session_id: "s_cut",
      identity,
      data: { reason: INTERRUPTED_REASON, interrupted: true, recorded_events: 2 },
    });
    const report = await verifyEvidence(store, { publicKey: signingKey.publicKey });
    expect(report.ok).toBe(true);
    expect(report.sessions).toMatchObject({ sealed: 2, unsealed: 0 });
    await recorder.close();
    await audit.close();
    await store.close();
  });
});

async function openAndCount(dir: string): Promise<{ unsealed: number }> {
  const store = await openStore({ dataDir: dir, readonly: true, worker: false });
  try {
    return { unsealed: (await store.listSessions({ sealed: false })).length };
  } finally {
    await store.close();
  }
}
