/**
 * The evidence log's writer and the store over it, on real files: group commit, torn tails cut at open, damage
 * refused, rotation, the writer lock, failed writes cut off again, a failed fdatasync refusing until restart,
 * and the index that readers see.
 */
import {
  appendFileSync,
  closeSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/core/evidence/audit-log.js";
import { SessionRecorder } from "../../src/core/evidence/recorder.js";
import { parseLine } from "../../src/core/evidence/segments/format.js";
import { SegmentWriter } from "../../src/core/evidence/segments/writer.js";
import { verifyEvidence } from "../../src/core/evidence/verify.js";
import { openEvidenceReader, openEvidenceStore } from "../../src/core/store/open.js";
import { cleanupDirs, newKey, tempDir } from "./helpers.js";

afterEach(cleanupDirs);

const segFile = (dir: string, writer = "w1", n = 1) =>
  join(dir, "evidence", writer, `${String(n).padStart(8, "0")}.seg`);

function lines(path: string): string[] {
  return readFileSync(path, "utf8").split("\n").slice(0, -1);
}

describe("SegmentWriter", () => {
  it("writes everything appended in one turn with one write, and resolves each append", async () => {
    const dir = tempDir();
    const log = SegmentWriter.open({ dataDir: dir, durability: "fsync" });
    const before = log.writes;
    await Promise.all([log.append("k {}\n"), log.append("s {}\n"), log.append("z {}\n")]);
    expect(log.writes - before).toBe(1);
    await log.append("s {}\n");
    expect(log.writes - before).toBe(2);
    await log.close();
    expect(lines(segFile(dir)).map((l) => l[0])).toEqual(["h", "k", "s", "z", "s"]);
  });

  it("cuts a torn tail at open and reports it; the log goes on after the last whole line", async () => {
    const dir = tempDir();
    const log = SegmentWriter.open({ dataDir: dir, durability: "os" });
    await log.append("s {}\n");
    await log.close();
    const size = statSync(segFile(dir)).size;
    appendFileSync(segFile(dir), 'a 0123 {"seq":'); // a write a crash cut short
    const again = SegmentWriter.open({ dataDir: dir, durability: "os" });
    expect(again.recovery).toMatchObject({ cutBytes: 14, cutAt: { segment: 1, offset: size } });
    await again.append("z {}\n");
    await again.close();
    expect(lines(segFile(dir)).map((l) => l[0])).toEqual(["h", "s", "z"]);
  });

  it("cuts trailing complete lines that do not hash (zeros, a half record) too", async () => {
    const dir = tempDir();
    const log = SegmentWriter.open({ dataDir: dir, durability: "os" });
    await log.append("s {}\n");
    await log.close();
    appendFileSync(segFile(dir), `r ${"0".repeat(64)} {"seq":1}\n\0\0\0\n`);
    const again = SegmentWriter.open({ dataDir: dir, durability: "os" });
    expect(again.recovery.cutBytes).toBe(81);
    await again.close();
  });

  it("writes the header of a segment that a crash left empty or with a torn header", async () => {
    for (const content of ["", 'h {"format":"gatehouse-evid']) {
      const dir = tempDir();
      const log = SegmentWriter.open({ dataDir: dir, durability: "os", maxSegmentBytes: 10 });
      await log.append("s {}\n"); // past 10 bytes already: goes to a new segment 2
      await log.close();
      writeFileSync(segFile(dir, "w1", 2), content);
      const again = SegmentWriter.open({ dataDir: dir, durability: "os" });
      await again.append("z {}\n");
      await again.close();
      expect(lines(segFile(dir, "w1", 2))).toEqual([expect.stringMatching(/^h .*"segment":2/), "z {}"]);
    }
  });

  it("refuses to append to a segment with a damaged line followed by good ones", async () => {
    const dir = tempDir();
    const log = SegmentWriter.open({ dataDir: dir, durability: "os" });
    await log.append("s {}\ns {}\n");
    await log.close();
    const text = readFileSync(segFile(dir), "utf8").split("\n");
    text[1] = "s {broken";
    writeFileSync(segFile(dir), text.join("\n"));
    expect(() => SegmentWriter.open({ dataDir: dir, durability: "os" })).toThrow(/damaged line.*audit verify/);
  });

  it("holds its writer name with a lock: a second writer in the data dir gets the next name", async () => {
    const dir = tempDir();
    const a = SegmentWriter.open({ dataDir: dir });
    const b = SegmentWriter.open({ dataDir: dir });
    expect([a.writer, b.writer]).toEqual(["w1", "w2"]);
    expect(() => SegmentWriter.open({ dataDir: dir, writer: "w1" })).toThrow(/in use/);
    await a.close();
    const c = SegmentWriter.open({ dataDir: dir });
    expect(c.writer).toBe("w1");
    await Promise.all([b.close(), c.close()]);
  });

  it("takes over a lock whose process is gone (kill -9)", async () => {
    const dir = tempDir();
    const a = SegmentWriter.open({ dataDir: dir });
    await a.close();
    writeFileSync(join(dir, "evidence", "w1", "LOCK"), "999999999\n");
    const b = SegmentWriter.open({ dataDir: dir });
    expect(b.writer).toBe("w1");
    await b.close();
  });

  it("starts a new segment past maxSegmentBytes, each with its header", async () => {
    const dir = tempDir();
    const log = SegmentWriter.open({ dataDir: dir, durability: "fsync", maxSegmentBytes: 200 });
    for (let i = 0; i < 10; i++) await log.append(`s {"i":${i},"pad":"${"x".repeat(40)}"}\n`);
    await log.close();
    const files = readdirSync(join(dir, "evidence", "w1")).filter((f) => f.endsWith(".seg"));
    expect(files.length).toBeGreaterThan(2);
    for (const [i, f] of files.entries()) {
      const first = parseLine(lines(join(dir, "evidence", "w1", f))[0]!);
      expect(first).toMatchObject({ tag: "h", value: { segment: i + 1, writer: "w1" } });
    }
  });

  it("cuts a short write off again and rejects its appends; the next append works", async () => {
    const dir = tempDir();
    let fail = false;
    const write: typeof writeSync = ((fd: number, buf: Buffer, off: number, len: number) => {
      if (!fail) return writeSync(fd, buf, off, len);
      fail = false;
      writeSync(fd, buf, off, Math.min(len, 3)); // part of it reaches the file, then the disk is full
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    }) as typeof writeSync;
    const log = SegmentWriter.open({ dataDir: dir, durability: "os", hooks: { write } });
    await log.append("s {}\n");
    fail = true;
    await expect(log.append('s {"lost":true}\n')).rejects.toThrow(/ENOSPC/);
    await log.append("z {}\n");
    await log.close();
    expect(lines(segFile(dir))).toEqual([expect.stringMatching(/^h /), "s {}", "z {}"]);
  });

  it("refuses every append after a failed fdatasync, until restarted", async () => {
    const dir = tempDir();
    let failSync = false;
    const log = SegmentWriter.open({
      dataDir: dir,
      durability: "fsync",
      hooks: {
        fdatasync: (fd, cb) => (failSync ? cb(Object.assign(new Error("EIO: i/o error"), { code: "EIO" })) : cb(null)),
      },
    });
    await log.append("s {}\n");
    failSync = true;
    await expect(log.append("s {}\n")).rejects.toThrow(/EIO/);
    failSync = false;
    await expect(log.append("s {}\n")).rejects.toThrow(/EIO/);
    expect(log.failure).toMatch(/restart/);
    await log.close().catch(() => undefined);
  });
});

describe("SegmentStore", () => {
  it("continues each writer's chain across restarts and a torn tail; readers see the newest durable records", async () => {
    const dir = tempDir();
    const key = newKey();
    const store = await openEvidenceStore({ dataDir: dir, durability: "os", indexEveryMs: 60_000 });
    const log = await AuditLog.open(store, { signingKey: key, checkpointIntervalMs: 0 });
    const recorder = new SessionRecorder(store, { signingKey: key });
    const rec = await recorder.start({ sessionId: "s-1", connection: "db", protocol: "postgres" });
    for (let i = 1; i <= 3; i++) {
      rec.record("request", { text: `select ${i}` });
      await log.append({ type: "request", session_id: "s-1", data: { text: `select ${i}` } });
    }
    // the background indexer has not run (60 s); a read catches the index up first
    expect((await store.readAudit()).map((r) => [r.writer, r.seq])).toEqual([
      ["w1", 1],
      ["w1", 2],
      ["w1", 3],
    ]);
    await rec.seal("done");
    expect((await store.readRecordingEvents("s-1")).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await store.getSession("s-1"))?.seal?.count).toBe(3);
    await recorder.close();
    await log.close();
    await store.close();

    appendFileSync(segFile(dir), 'a 77 {"writer":"w1"'); // torn
    const again = await openEvidenceStore({ dataDir: dir, durability: "fsync" });
    expect(again.recovery.cutBytes).toBeGreaterThan(0);
    const log2 = await AuditLog.open(again, { signingKey: key });
    const r4 = await log2.append({ type: "gateway.start" });
    expect(r4).toMatchObject({ writer: "w1", seq: 4 });
    const all = await again.readAudit({ writer: "w1" });
    expect(r4.prev_hash).toBe(all[2]?.hash);
    await log2.close();
    await again.close();
  });

  it("a reader opened after a crash indexes what the gateway had not", async () => {
    const dir = tempDir();
    const key = newKey();
    const store = await openEvidenceStore({ dataDir: dir, durability: "os", indexEveryMs: 60_000 });
    const log = await AuditLog.open(store, { signingKey: key, checkpointIntervalMs: 0 });
    for (let i = 0; i < 5; i++) await log.append({ type: "request", data: { i } });
    // no close: what a kill -9 leaves (the lock file and an unindexed tail)
    const reader = await openEvidenceReader(dir);
    try {
      expect(await reader.countAudit()).toBe(5);
    } finally {
      await reader.close();
      await store.close();
    }
  });

  it("indexes the first records appended after a cut tail that a reader had already read past", async () => {
    const dir = tempDir();
    const key = newKey();
    const store = await openEvidenceStore({ dataDir: dir, durability: "os" });
    const log = await AuditLog.open(store, { signingKey: key, checkpointIntervalMs: 0 });
    await log.append({ type: "request", data: { i: 1 } });
    await log.close();
    await store.close();
    // a crash left a complete but unreadable line; a reader indexes up to and past it (skipping it)
    appendFileSync(segFile(dir), `a ${"0".repeat(64)} {"writer":"w1","seq":\0\0}\n`);
    const reader = await openEvidenceReader(dir);
    expect(await reader.countAudit()).toBe(1);
    await reader.close();
    const again = await openEvidenceStore({ dataDir: dir, durability: "os" });
    expect(again.recovery.cutBytes).toBeGreaterThan(0);
    const log2 = await AuditLog.open(again, { signingKey: key, checkpointIntervalMs: 0 });
    await log2.append({ type: "request", data: { i: 2 } });
    expect((await again.readAudit()).map((r) => r.seq)).toEqual([1, 2]);
    await log2.close();
    await again.close();
  });

  it("rebuilds its part of the index when the log lost writes the index kept (a power loss with durability os)", async () => {
    const dir = tempDir();
    const key = newKey();
    const store = await openEvidenceStore({ dataDir: dir, durability: "os" });
    const log = await AuditLog.open(store, { signingKey: key, checkpointIntervalMs: 0 });
    for (let i = 1; i <= 5; i++) await log.append({ type: "request", data: { i } });
    await store.catchUp(); // indexed up to seq 5
    const keep = statSync(segFile(dir)).size;
    for (let i = 6; i <= 8; i++) await log.append({ type: "request", data: { i } });
    await store.catchUp(); // ... and up to seq 8
    await store.close(); // no log.close(): no final checkpoint
    // the page cache never reached the disk: the log ends after seq 5 again, the index still holds 6..8
    const fd = openSync(segFile(dir), "r+");
    ftruncateSync(fd, keep);
    closeSync(fd);
    const again = await openEvidenceStore({ dataDir: dir, durability: "os" });
    expect((await again.readAudit()).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    const log2 = await AuditLog.open(again, { signingKey: key, checkpointIntervalMs: 0 });
    expect((await log2.append({ type: "gateway.start" })).seq).toBe(6);
    await log2.close();
    expect((await again.readAudit({ writer: again.writer })).map((r) => r.type).at(-1)).toBe("gateway.start");
    expect((await verifyEvidence(again)).ok).toBe(true);
    await again.close();
  });
});
