import Database from "better-sqlite3";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/core/evidence/audit-log.js";
import { ZERO_HASH } from "../../src/core/evidence/canonical.js";
import { auditRecordHash } from "../../src/core/evidence/chain.js";
import { EvidenceUnavailableError } from "../../src/core/evidence/errors.js";
import { verifyEvidence } from "../../src/core/evidence/verify.js";
import { openStore, type Store } from "../../src/core/store/index.js";
import { cleanupDirs, event, faultyStore, newKey, tempDir } from "./helpers.js";

const open: Store[] = [];
async function store(dataDir: string, opts: { readonly?: boolean; busyTimeoutMs?: number } = {}) {
  const s = await openStore({ dataDir, ...opts });
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  cleanupDirs();
});

describe("AuditLog", () => {
  it("appends durable, chained records that read back identically", async () => {
    const s = await store(tempDir());
    const log = await AuditLog.open(s, { signingKey: newKey() });
    const a = await log.append(event(1));
    const b = await log.append({ type: "auth.failed", data: { reason: "bad token" } });
    expect(a).toMatchObject({ seq: 1, prev_hash: ZERO_HASH, type: "request", connection: "app-db" });
    expect(b.prev_hash).toBe(a.hash);
    expect(auditRecordHash(a)).toBe(a.hash);
    expect(await s.readAudit()).toEqual([a, b]);
    await log.close();
    expect((await s.lastCheckpoint())?.seq).toBe(2);
    expect((await verifyEvidence(s)).ok).toBe(true);
  });

  it("group-commits concurrent appends: fewer transactions than events, all durable, in seq order", async () => {
    const s = await store(tempDir());
    const log = await AuditLog.open(s, { signingKey: newKey(), checkpointEvery: 100 });
    const n = 2000;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => log.append(event(i))));
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // appends made in one tick are handed out seqs in call order
    expect(results.map((r) => r.data?.["n"])).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(log.stats.commits).toBeLessThan(n / 10);
    expect(await s.countAudit()).toBe(n);
    // and staggered producers also share transactions
    const staggered = await Promise.all(
      Array.from({ length: 50 }, async (_, p) => {
        for (let i = 0; i < 10; i++) await log.append(event(p * 100 + i));
      }),
    );
    expect(staggered).toHaveLength(50);
    expect(log.stats.records).toBe(n + 500);
    expect(log.stats.commits).toBeLessThan(n / 10 + 500);
    await log.close();
    const report = await verifyEvidence(s);
    expect(report).toMatchObject({ ok: true, records: n + 500, unsigned_tail: 0 });
    // one per transaction that crossed 100 unsigned records (batches here hold up to 1000)
    expect(report.checkpoints).toBeGreaterThanOrEqual(3);
  });

  it("continues the chain after a restart", async () => {
    const dir = tempDir();
    const key = newKey();
    let s = await store(dir);
    let log = await AuditLog.open(s, { signingKey: key });
    await log.append(event(1));
    const last = await log.append(event(2));
    await log.close();
    await s.close();
    s = await store(dir);
    log = await AuditLog.open(s, { signingKey: key });
    expect(log.head).toEqual({ seq: 2, hash: last.hash });
    const next = await log.append(event(3));
    expect(next).toMatchObject({ seq: 3, prev_hash: last.hash });
    expect(Date.parse(next.time)).toBeGreaterThanOrEqual(Date.parse(last.time));
    await log.close();
    const report = await verifyEvidence(s);
    expect(report).toMatchObject({ ok: true, records: 3, checkpoints: 2, last_seq: 3 });
  });

  it("signs checkpoints every N records and on a timer", async () => {
    const s = await store(tempDir());
    const log = await AuditLog.open(s, { signingKey: newKey(), checkpointEvery: 10, checkpointIntervalMs: 50 });
    for (let i = 0; i < 25; i++) await log.append(event(i));
    expect((await s.listCheckpoints()).map((c) => c.seq)).toEqual([10, 20]);
    await new Promise((r) => setTimeout(r, 150));
    expect((await s.lastCheckpoint())?.seq).toBe(25);
    await log.close(); // nothing new: no duplicate checkpoint
    expect((await s.listCheckpoints()).map((c) => c.seq)).toEqual([10, 20, 25]);
    expect(await log.append(event(0)).catch((e: unknown) => e)).toBeInstanceOf(EvidenceUnavailableError);
  });

  it("fails closed on an injected write failure, keeps the chain, and resumes", async () => {
    const inner = await store(tempDir());
    const { store: s, control } = faultyStore(inner);
    const log = await AuditLog.open(s, { signingKey: newKey() });
    const first = await log.append(event(1));
    expect(log.failure).toBeUndefined();
    control.failWrites = true;
    const failed = await Promise.allSettled([log.append(event(2)), log.append(event(3)), log.append(event(4))]);
    // what /healthz reports while the store fails
    expect(log.failure).toMatch(/SQLITE_IOERR/);
    for (const f of failed) {
      expect(f.status).toBe("rejected");
      expect((f as PromiseRejectedResult).reason).toBeInstanceOf(EvidenceUnavailableError);
      expect(String((f as PromiseRejectedResult).reason)).toMatch(/SQLITE_IOERR/);
    }
    expect(log.head).toEqual({ seq: 1, hash: first.hash });
    control.failWrites = false;
    const resumed = await log.append(event(5));
    expect(resumed).toMatchObject({ seq: 2, prev_hash: first.hash });
    expect(log.failure).toBeUndefined();
    await log.close();
    expect((await verifyEvidence(inner)).ok).toBe(true);
  });

  it("re-reads the head after an ambiguous failure (committed, but reported as failed)", async () => {
    const inner = await store(tempDir());
    const { store: s, control } = faultyStore(inner);
    const log = await AuditLog.open(s, { signingKey: newKey() });
    await log.append(event(1));
    control.failAfterCommit = true;
    await expect(log.append(event(2))).rejects.toBeInstanceOf(EvidenceUnavailableError);
    control.failAfterCommit = false;
    const next = await log.append(event(3));
    // the rejected event did reach the disk, so the chain goes on from it instead of forking
    expect(next.seq).toBe(3);
    await log.close();
    expect((await verifyEvidence(inner)).ok).toBe(true);
  });

  it("fails closed on a real read-only database", async () => {
    const dir = tempDir();
    const rw = await store(dir);
    const log0 = await AuditLog.open(rw, { signingKey: newKey() });
    await log0.append(event(1));
    await log0.close();
    const ro = await store(dir, { readonly: true });
    const log = await AuditLog.open(ro, { signingKey: newKey(), checkpointIntervalMs: 0 });
    const err = await log.append(event(2)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvidenceUnavailableError);
    expect(String(err)).toMatch(/readonly|read-only/i);
    expect(log.head.seq).toBe(1);
    expect(await ro.countAudit()).toBe(1);
  });

  it("fails closed while another process holds the write lock, and resumes when it is released", async () => {
    const dir = tempDir();
    const s = await store(dir, { busyTimeoutMs: 100 });
    const log = await AuditLog.open(s, { signingKey: newKey(), checkpointIntervalMs: 0 });
    await log.append(event(1));
    const other = new Database(join(dir, "gatehouse.db"));
    other.prepare("BEGIN IMMEDIATE").run();
    try {
      const err = await log.append(event(2)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EvidenceUnavailableError);
      expect(String(err)).toMatch(/locked|busy/i);
    } finally {
      other.prepare("ROLLBACK").run();
      other.close();
    }
    expect((await log.append(event(3))).seq).toBe(2);
    await log.close();
    expect((await verifyEvidence(s)).ok).toBe(true);
  });

  it("rejects events that cannot be hashed without touching the chain", async () => {
    const s = await store(tempDir());
    const log = await AuditLog.open(s, { signingKey: newKey() });
    await expect(log.append({ type: "request", data: { n: 1n } })).rejects.toThrow(TypeError);
    await expect(log.append({ type: "" })).rejects.toThrow(TypeError);
    expect((await log.append(event(1))).seq).toBe(1);
    await log.close();
  });
});
