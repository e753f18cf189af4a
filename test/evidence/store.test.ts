import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/core/evidence/audit-event.js";
import Database from "better-sqlite3";
import { openStore, STORE_FILE, type Store } from "../../src/core/store/index.js";
import { SqliteSession, type EvidenceDurability } from "../../src/core/store/sqlite-session.js";
import { InProcessSqliteClient } from "../../src/core/store/sqlite-client.js";

const dirs: string[] = [];
const stores: Store[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "gatehouse-store-"));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function rec(seq: number, extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    seq,
    time: new Date(1_700_000_000_000 + seq).toISOString(),
    type: "request",
    prev_hash: "p".repeat(64),
    hash: String(seq).padStart(64, "0"),
    ...extra,
  };
}

describe.each([true, false])("sqlite store (worker=%s)", (worker) => {
  it("round-trips audit records, checkpoints, keys and recordings", async () => {
    const dataDir = tempDir();
    const store = await openStore({ dataDir, worker });
    stores.push(store);
    const records = [
      rec(1, { data: { sql: "select 1", n: 1.5 }, connection: "app-db", decision: "allow" }),
      rec(2, { data: {}, identity: { subject: "ci", kind: "bot", groups: [], issuer: "x", token_id: "t" } }),
      rec(3),
    ];
    await store.commitAudit({
      records,
      checkpoint: { seq: 3, hash: records[2]!.hash, time: "t", signature: "s", key_id: "k" },
      signingKey: { key_id: "k", algorithm: "ed25519", public_key: "pem", created_at: "c" },
    });
    expect(await store.readAudit()).toEqual(records);
    expect(await store.readAudit({ fromSeq: 2, limit: 1 })).toEqual([records[1]]);
    expect((await store.lastAudit())?.seq).toBe(3);
    expect((await store.tailAudit(2)).map((r) => r.seq)).toEqual([2, 3]);
    expect(await store.countAudit()).toBe(3);
    const it: number[] = [];
    for await (const r of store.iterateAudit({ pageSize: 2 })) it.push(r.seq);
    expect(it).toEqual([1, 2, 3]);
    expect(await store.listCheckpoints()).toHaveLength(1);
    expect((await store.lastCheckpoint())?.seq).toBe(3);
    await store.putSigningKey({ key_id: "k", algorithm: "ed25519", public_key: "pem", created_at: "c" });
    expect(await store.listSigningKeys()).toHaveLength(1);

    await store.createSession({ session_id: "s1", connection: "c", protocol: "ssh", started_at: "t0" });
    await store.appendRecordingEvents([
      { session_id: "s1", seq: 1, t: 0, kind: "input", data: "ls\n", prev_hash: "a", hash: "b" },
      { session_id: "s1", seq: 2, t: 5, kind: "output", data: null, prev_hash: "b", hash: "c" },
    ]);
    await store.sealSession({
      session_id: "s1",
      count: 2,
      last_hash: "c",
      ended_at: "t1",
      reason: "closed",
      signature: "sig",
      key_id: "k",
    });
    const s = await store.getSession("s1");
    expect(s?.seal?.count).toBe(2);
    expect((await store.listSessions({ sealed: true })).map((x) => x.session_id)).toEqual(["s1"]);
    const evs = await store.readRecordingEvents("s1");
    expect(evs.map((e) => e.seq)).toEqual([1, 2]);
    expect(evs[1]).toHaveProperty("data", null);
    expect(evs[0]?.data).toBe("ls\n");
  });

  it("rolls back a whole batch when one statement fails", async () => {
    const store = await openStore({ dataDir: tempDir(), worker });
    stores.push(store);
    await store.commitAudit({ records: [rec(1)] });
    await expect(store.commitAudit({ records: [rec(2), rec(1)] })).rejects.toThrow(/UNIQUE|constraint/i);
    expect(await store.countAudit()).toBe(1);
  });
});

describe("audit.durability", () => {
  it("fsync (the default) fsyncs every commit; os leaves commits to the OS and fsyncs at checkpoints", () => {
    const dir = tempDir();
    const pragma = (durability?: EvidenceDurability) => {
      const session = new SqliteSession({
        path: join(dir, "d.db"),
        readonly: false,
        busyTimeoutMs: 100,
        ...(durability ? { durability } : {}),
      });
      try {
        return session.query({ sql: "PRAGMA synchronous", parameters: [] }).rows[0];
      } finally {
        session.close();
      }
    };
    // SQLite: 2 = FULL (WAL fsynced at each commit), 1 = NORMAL (WAL fsynced at checkpoints only)
    expect(pragma()).toEqual({ synchronous: 2 });
    expect(pragma("fsync")).toEqual({ synchronous: 2 });
    expect(pragma("os")).toEqual({ synchronous: 1 });
  });
});

describe("durability os in-process: WAL checkpoints off the event loop", () => {
  it("the writer never checkpoints; a worker thread does, and the WAL stays bounded under steady writes", async () => {
    const path = join(tempDir(), "d.db");
    const options = { path, readonly: false, busyTimeoutMs: 1000, durability: "os" as const };
    const client = new InProcessSqliteClient({ ...options, autoCheckpoint: false });
    try {
      await client.startCheckpointer(options, 10);
      expect((await client.query({ sql: "PRAGMA synchronous", parameters: [] })).rows[0]).toEqual({ synchronous: 1 });
      expect((await client.query({ sql: "PRAGMA wal_autocheckpoint", parameters: [] })).rows[0]).toEqual({
        wal_autocheckpoint: 0,
      });
      await client.query({ sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)", parameters: [] });
      const blob = Buffer.alloc(3000, 7);
      let maxWal = 0;
      // ~36 MB through the WAL in single-row commits, yielding like a busy gateway does between them
      for (let i = 0; i < 12_000; i++) {
        await client.batch([{ sql: "INSERT INTO t (v) VALUES (?)", parameters: [blob] }]);
        if (i % 50 === 0) {
          await new Promise((r) => setTimeout(r, 1));
          maxWal = Math.max(maxWal, statSync(`${path}-wal`).size);
        }
      }
      const stats = client.checkpointStats;
      expect(stats?.failures).toBe(0);
      expect(stats?.checkpoints).toBeGreaterThan(0);
      // the catch-up checkpoints let the writer restart the WAL: without them it would hold all ~36 MB
      expect(stats?.catchUps).toBeGreaterThan(0);
      expect(maxWal).toBeLessThan(16 * 1024 * 1024);
      expect(statSync(path).size).toBeGreaterThan(30 * 1024 * 1024);
      expect((await client.query({ sql: "SELECT count(*) AS n FROM t", parameters: [] })).rows[0]).toEqual({
        n: 12_000,
      });
    } finally {
      await client.close();
    }
    // the writer closed last: its close checkpointed and removed the WAL
    expect(existsSync(`${path}-wal`)).toBe(false);
  }, 60_000);

  it("openStore({ worker: false, durability: 'os' }) round-trips and closes cleanly", async () => {
    const dataDir = tempDir();
    const store = await openStore({ dataDir, worker: false, durability: "os", checkpointEveryMs: 5 });
    try {
      for (let seq = 1; seq <= 300; seq++) await store.commitAudit({ records: [rec(seq)] });
      expect(await store.countAudit()).toBe(300);
      expect((await store.lastAudit())?.seq).toBe(300);
    } finally {
      await store.close();
    }
    const reopened = await openStore({ dataDir, worker: false, durability: "os" });
    stores.push(reopened);
    expect(await reopened.countAudit()).toBe(300);
  });
});

describe("migration 0004: audit_events keyed by its rowid", () => {
  /**
   * Turns a migrated store back into what migration 0003 left: seq as `bigint PRIMARY KEY` (a separate index),
   * and no evidence log index (0005).
   */
  function toPre0004(path: string, extraRows: (db: Database.Database) => void = () => undefined) {
    const db = new Database(path);
    try {
      db.exec(`BEGIN;
        CREATE TABLE old_events (seq bigint PRIMARY KEY, time text NOT NULL, type text NOT NULL, identity text,
          connection text, session_id text, decision text, rule text, data text, prev_hash text NOT NULL,
          hash text NOT NULL);
        INSERT INTO old_events SELECT * FROM audit_events;
        DROP TABLE audit_events;
        ALTER TABLE old_events RENAME TO audit_events;
        DELETE FROM kysely_migration WHERE name = '0004_audit_seq_rowid';
        DROP TABLE log_audit_events; DROP TABLE log_checkpoints; DROP TABLE log_watermarks;
        ALTER TABLE sessions DROP COLUMN writer; ALTER TABLE recording_events DROP COLUMN text;
        DELETE FROM kysely_migration WHERE name = '0005_evidence_log_index';
        COMMIT;`);
      extraRows(db);
    } finally {
      db.close();
    }
  }
  const indexes = (path: string) => {
    const db = new Database(path, { readonly: true });
    try {
      return (db.pragma("index_list(audit_events)") as { name: string }[]).map((i) => i.name);
    } finally {
      db.close();
    }
  };

  it("rebuilds the table with seq as INTEGER PRIMARY KEY and keeps every record as it was", async () => {
    const dataDir = tempDir();
    const records = [
      rec(1, { data: { sql: "select 1" }, connection: "app-db", decision: "allow" }),
      rec(2, { identity: { subject: "ci", kind: "bot", groups: ["a"], issuer: "x", token_id: "t" } }),
      rec(3, { rule: "connections[0].guardrails[1]", session_id: "s_1", decision: "deny" }),
    ];
    const first = await openStore({ dataDir, worker: false });
    await first.commitAudit({ records });
    await first.close();
    const path = join(dataDir, STORE_FILE);
    toPre0004(path);
    expect(indexes(path)).toEqual(["sqlite_autoindex_audit_events_1"]);

    const store = await openStore({ dataDir, worker: false });
    stores.push(store);
    expect(indexes(path)).toEqual([]);
    expect(await store.readAudit()).toEqual(records);
    await store.commitAudit({ records: [rec(4)] });
    await expect(store.commitAudit({ records: [rec(4)] })).rejects.toThrow(/UNIQUE|constraint/i);
    expect((await store.lastAudit())?.seq).toBe(4);
  });

  it("refuses to start on a log holding a non-integer seq, naming it, and changes nothing", async () => {
    const dataDir = tempDir();
    const first = await openStore({ dataDir, worker: false });
    await first.commitAudit({ records: [rec(1), rec(2)] });
    await first.close();
    const path = join(dataDir, STORE_FILE);
    toPre0004(path, (db) =>
      db
        .prepare(
          "INSERT INTO audit_events SELECT 1.5, time, type, identity, connection, session_id, decision, rule, data, prev_hash, hash FROM audit_events WHERE seq = 1",
        )
        .run(),
    );
    await expect(openStore({ dataDir, worker: false })).rejects.toThrow(
      /seq 1\.5, which is not an integer.*audit verify/,
    );
    expect(indexes(path)).toEqual(["sqlite_autoindex_audit_events_1"]);
  });
});
