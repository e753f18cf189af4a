/**
 * Durability fsync with an in-process writer: commits run on the event loop without fsync, and each write
 * resolves only after an fdatasync of the WAL on libuv's thread pool. The fdatasync is the real one, wrapped so
 * the test can see which file it syncs and hold or fail it (a real disk cannot be made to fail on cue).
 */
import { fdatasync, fstatSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openStore } from "../../src/core/store/index.js";
import { InProcessSqliteClient } from "../../src/core/store/sqlite-client.js";
import { WalSync, WalSyncError, type FdatasyncFn } from "../../src/core/store/wal-sync.js";

const dirs: string[] = [];
const clients: InProcessSqliteClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface HeldSync {
  fd: number;
  release: (err?: NodeJS.ErrnoException) => void;
}

/** An fdatasync that waits for the test to release each call (then runs the real one, or fails). */
function heldFdatasync(): { fn: FdatasyncFn; held: HeldSync[]; next: () => Promise<HeldSync> } {
  const held: HeldSync[] = [];
  let wake: (() => void) | undefined;
  const fn: FdatasyncFn = (fd, callback) => {
    held.push({
      fd,
      release: (err) => (err ? callback(err) : fdatasync(fd, callback)),
    });
    wake?.();
  };
  const next = async (): Promise<HeldSync> => {
    while (held.length === 0) await new Promise<void>((r) => (wake = r));
    return held.shift()!;
  };
  return { fn, held, next };
}

function client(fn?: FdatasyncFn): { c: InProcessSqliteClient; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-walsync-"));
  dirs.push(dir);
  const path = join(dir, "d.db");
  const c = new InProcessSqliteClient(
    { path, readonly: false, busyTimeoutMs: 1000, autoCheckpoint: false, walSyncedByCaller: true },
    fn ? { fdatasync: fn } : {},
  );
  clients.push(c);
  return { c, path };
}

const insert = (v: number) => ({ sql: "INSERT INTO t (v) VALUES (?)", parameters: [v] });
const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
};

describe("durability fsync, in-process writer (WalSync)", () => {
  it("commits without SQLite's fsync, and a write resolves only after the WAL file itself was fdatasynced", async () => {
    const sync = heldFdatasync();
    const { c, path } = client(sync.fn);
    // NORMAL: SQLite does not fsync at commit; this connection never checkpoints inside a commit
    expect((await c.query({ sql: "PRAGMA synchronous", parameters: [] })).rows[0]).toEqual({ synchronous: 1 });
    const created = c.query({ sql: "CREATE TABLE t (v INTEGER)", parameters: [] });
    (await sync.next()).release();
    await created;

    const write = c.batch([insert(1)]);
    const call = await sync.next();
    expect(await settled(write)).toBe(false);
    // the synced descriptor is the live WAL (same inode), not the database or a stale copy
    expect(fstatSync(call.fd).ino).toBe(statSync(`${path}-wal`).ino);
    call.release();
    expect(await write).toBe(1);
    // reads do not wait for a sync
    expect((await c.query({ sql: "SELECT count(*) AS n FROM t", parameters: [] })).rows[0]).toEqual({ n: 1 });
    expect(sync.held).toHaveLength(0);
  });

  it("writes that commit while an fdatasync runs share the next one", async () => {
    const sync = heldFdatasync();
    const { c } = client(sync.fn);
    const created = c.query({ sql: "CREATE TABLE t (v INTEGER)", parameters: [] });
    (await sync.next()).release();
    await created;
    const before = c.walSyncs ?? 0;

    const first = c.batch([insert(1)]);
    const running = await sync.next();
    const later = [c.batch([insert(2)]), c.batch([insert(3)]), c.query(insert(4))];
    await new Promise((r) => setImmediate(r));
    // one fdatasync in flight at a time: the three later commits wait for the next one
    expect(sync.held).toHaveLength(0);
    running.release();
    await first;
    for (const p of later) expect(await settled(p)).toBe(false);
    (await sync.next()).release();
    await Promise.all(later);
    expect((c.walSyncs ?? 0) - before).toBe(2);
    expect((await c.query({ sql: "SELECT count(*) AS n FROM t", parameters: [] })).rows[0]).toEqual({ n: 4 });
  });

  it("an fdatasync error fails the waiting writes and every later one (fail closed until restart); reads work", async () => {
    const sync = heldFdatasync();
    const { c } = client(sync.fn);
    const created = c.query({ sql: "CREATE TABLE t (v INTEGER)", parameters: [] });
    (await sync.next()).release();
    await created;

    const write = c.batch([insert(1)]);
    const eio = Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
    (await sync.next()).release(eio);
    await expect(write).rejects.toThrow(WalSyncError);
    await expect(write).rejects.toThrow(/EIO.*refuses writes until the gateway is restarted/);
    // a later fdatasync might report success after Linux dropped the failed pages: nothing is trusted again
    await expect(c.batch([insert(2)])).rejects.toThrow(WalSyncError);
    await expect(c.query(insert(3))).rejects.toThrow(WalSyncError);
    expect(sync.held).toHaveLength(0);
    expect((await c.query({ sql: "SELECT count(*) AS n FROM t", parameters: [] })).rows).toHaveLength(1);
  });

  it("with no WAL file yet (nothing written to one) a sync resolves without an fdatasync and without failing", async () => {
    const sync = heldFdatasync();
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-walsync-"));
    dirs.push(dir);
    const ws = new WalSync(join(dir, "d.db-wal"), sync.fn);
    await ws.sync();
    expect(sync.held).toHaveLength(0);
    expect(ws.syncs).toBe(0);
    // the file appears with the first commit that writes a page: from then on it is synced
    writeFileSync(join(dir, "d.db-wal"), "frames");
    const later = ws.sync();
    (await sync.next()).release();
    await later;
    expect(ws.syncs).toBe(1);
    await ws.close();
  });

  it("openStore({ worker: false }) with durability fsync round-trips through the real fdatasync", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "gatehouse-walsync-"));
    dirs.push(dataDir);
    const store = await openStore({ dataDir, worker: false, checkpointEveryMs: 5 });
    try {
      for (let seq = 1; seq <= 200; seq++) {
        await store.commitAudit({
          records: [
            {
              seq,
              time: new Date(1_700_000_000_000 + seq).toISOString(),
              type: "request",
              prev_hash: "p".repeat(64),
              hash: String(seq).padStart(64, "0"),
            },
          ],
        });
      }
      expect(await store.countAudit()).toBe(200);
    } finally {
      await store.close();
    }
    const reopened = await openStore({ dataDir, readonly: true, worker: false });
    try {
      expect((await reopened.lastAudit())?.seq).toBe(200);
    } finally {
      await reopened.close();
    }
  });
});
