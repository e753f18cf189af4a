/**
 * One writer's evidence log: appends lines to its current segment file, one write per event-loop turn for
 * everything appended in that turn (group commit), then, with durability `fsync`, one fdatasync on libuv's
 * thread pool shared by every write that landed while the previous one ran. An append resolves once its bytes
 * are as durable as configured.
 *
 * Each gateway process appends as its own writer (a folder under DATA/evidence, held with a lock file), so
 * several processes append without sharing a lock. At open, a torn tail of the last segment (a write that a
 * crash cut short: an incomplete last line, or trailing lines that do not parse or hash) is cut and reported; a
 * bad line followed by good ones is not a torn write, and the writer refuses to start on it.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  constants as fsConstants,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { WalSync, type FdatasyncFn } from "../../store/wal-sync.js";
import { headerLine, LineError, parseLine, SEGMENT_FORMAT, WRITER_NAME } from "./format.js";
import { evidenceDir, listSegments, readSegmentLines, segmentPath } from "./reader.js";

export type SegmentDurability = "fsync" | "os";

export interface SegmentWriterOptions {
  dataDir: string;
  /** This writer's name; default: the first of w1, w2, ... that no running process holds. */
  writer?: string;
  durability?: SegmentDurability;
  /** Start a new segment once the current one holds this many bytes (default 64 MiB). */
  maxSegmentBytes?: number;
  /** Appends waiting beyond this many bytes are refused at once (default 256 MiB). */
  maxPendingBytes?: number;
  /** Tests: a failing or slow disk. */
  hooks?: { fdatasync?: FdatasyncFn; write?: typeof writeSync };
}

/** Where a writer's log ends: the next byte of the current segment. */
export interface LogPosition {
  segment: number;
  offset: number;
}

/** What opening found and did. */
export interface Recovery {
  /** Bytes cut from the end of the last segment (a torn write). */
  cutBytes: number;
  /** Where they were cut, when any were. */
  cutAt?: LogPosition;
  /** How many segments the writer had. */
  segments: number;
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

const LOCK_FILE = "LOCK";

/** Why the log did not take an append; the audit log and recorder wrap it as EvidenceUnavailableError. */
export class EvidenceLogError extends Error {
  override readonly name = "EvidenceLogError";
}

export class SegmentWriter {
  readonly writer: string;
  readonly dir: string;
  readonly recovery: Recovery;
  readonly #durability: SegmentDurability;
  readonly #maxSegment: number;
  readonly #maxPending: number;
  readonly #write: typeof writeSync;
  readonly #fdatasync: FdatasyncFn | undefined;
  #segment: number;
  #fd: number;
  #size: number;
  #sync: WalSync | undefined;
  #pending: string[] = [];
  #pendingBytes = 0;
  #waiters: Waiter[] = [];
  #scheduled = false;
  /** Set when the log cannot be trusted any more (a write that could not be undone); refuses until restart. */
  #broken: Error | undefined;
  #closed = false;
  /** Where the bytes that have been made durable end. */
  #durable: LogPosition;
  readonly #onDurable: ((p: LogPosition) => void)[] = [];
  writes = 0;

  private constructor(
    writer: string,
    dir: string,
    options: SegmentWriterOptions,
    segment: number,
    fd: number,
    size: number,
    recovery: Recovery,
  ) {
    this.writer = writer;
    this.dir = dir;
    this.recovery = recovery;
    this.#durability = options.durability ?? "fsync";
    this.#maxSegment = options.maxSegmentBytes ?? 64 * 1024 * 1024;
    this.#maxPending = options.maxPendingBytes ?? 256 * 1024 * 1024;
    this.#write = options.hooks?.write ?? writeSync;
    this.#fdatasync = options.hooks?.fdatasync;
    this.#segment = segment;
    this.#fd = fd;
    this.#size = size;
    this.#durable = { segment, offset: size };
    this.#sync = this.#durability === "fsync" ? this.#newSync() : undefined;
  }

  /** Takes a writer's lock, cuts a torn tail, and opens the last segment for appending. */
  static open(options: SegmentWriterOptions): SegmentWriter {
    const root = evidenceDir(options.dataDir);
    mkdirSync(root, { recursive: true, mode: 0o700 });
    const writer = options.writer ?? pickWriter(root);
    if (!WRITER_NAME.test(writer)) throw new Error(`evidence writer name ${JSON.stringify(writer)} is not valid`);
    const dir = join(root, writer);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!takeLock(dir)) throw new Error(`evidence writer ${writer} is in use by another running process`);
    try {
      const segments = listSegments(dir);
      let recovery: Recovery = { cutBytes: 0, segments: segments.length };
      let segment = segments.at(-1);
      if (segment === undefined) {
        segment = 1;
        createSegment(dir, writer, segment, options.durability ?? "fsync");
      } else {
        recovery = { ...cutTornTail(segmentPath(dir, segment), segment), segments: segments.length };
      }
      const fd = openSync(segmentPath(dir, segment), fsConstants.O_WRONLY | fsConstants.O_APPEND);
      let size = fstatSync(fd).size;
      if (size === 0) {
        // a crash between creating the segment and writing its header: write it now
        const header = Buffer.from(headerLine({ format: SEGMENT_FORMAT, segment, writer }), "utf8");
        writeSync(fd, header);
        size = header.length;
      }
      return new SegmentWriter(writer, dir, options, segment, fd, size, recovery);
    } catch (err) {
      releaseLock(dir);
      throw err;
    }
  }

  /** Where the durable log ends now. */
  get durable(): LogPosition {
    return this.#durable;
  }

  /** Calls `fn` each time more of the log became durable (the indexer follows it). */
  onDurable(fn: (p: LogPosition) => void): void {
    this.#onDurable.push(fn);
  }

  /** Why the log refuses appends, while it does. */
  get failure(): string | undefined {
    return this.#broken?.message;
  }

  /**
   * Appends complete lines (each ending in a newline). Everything appended in one turn of the event loop is
   * written with one write; resolves once durable.
   */
  append(lines: string): Promise<void> {
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.#closed) return Promise.reject(new EvidenceLogError("evidence log is closed"));
    if (this.#pendingBytes + lines.length > this.#maxPending) {
      return Promise.reject(new EvidenceLogError("too many appends waiting"));
    }
    this.#pending.push(lines);
    this.#pendingBytes += lines.length;
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#scheduled) {
      this.#scheduled = true;
      // after the current task: every append of this callback (one socket read, one commit) shares the write
      queueMicrotask(() => this.#flush());
    }
    return p;
  }

  #flush(): void {
    this.#scheduled = false;
    const waiters = this.#waiters;
    this.#waiters = [];
    const text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join("");
    this.#pending = [];
    this.#pendingBytes = 0;
    if (waiters.length === 0) return;
    if (this.#broken) {
      for (const w of waiters) w.reject(this.#broken);
      return;
    }
    const buf = Buffer.from(text, "utf8");
    try {
      if (this.#size + buf.length > this.#maxSegment && this.#size > 0) this.#rotate();
      this.#writeAll(buf);
    } catch (err) {
      const e = new EvidenceLogError(describe(err), { cause: err });
      for (const w of waiters) w.reject(e);
      return;
    }
    this.writes++;
    const at: LogPosition = { segment: this.#segment, offset: this.#size };
    if (this.#sync === undefined) {
      this.#settle(waiters, at);
      return;
    }
    this.#sync.sync().then(
      () => this.#settle(waiters, at),
      (err: unknown) => {
        // fsyncgate: a failed fdatasync may have dropped pages that a later one reports as fine
        this.#broken ??= new EvidenceLogError(describe(err), { cause: err });
        for (const w of waiters) w.reject(this.#broken);
      },
    );
  }

  #settle(waiters: Waiter[], at: LogPosition): void {
    const d = this.#durable;
    if (at.segment > d.segment || (at.segment === d.segment && at.offset > d.offset)) this.#durable = at;
    for (const w of waiters) w.resolve();
    for (const fn of this.#onDurable) {
      try {
        fn(this.#durable);
      } catch {
        // a follower's failure is its own
      }
    }
  }

  /** Writes the whole buffer or nothing: a short or failed write is cut off again, so no torn line stays behind. */
  #writeAll(buf: Buffer): void {
    let done = 0;
    try {
      while (done < buf.length) done += this.#write(this.#fd, buf, done, buf.length - done);
    } catch (err) {
      // whatever reached the file (a short write, or bytes of the failed call itself) is cut off again
      try {
        ftruncateSync(this.#fd, this.#size);
      } catch (cutErr) {
        this.#broken = new EvidenceLogError(
          `a failed write (${describe(err)}) could not be cut off (${describe(cutErr)}); restart the gateway`,
          { cause: cutErr },
        );
      }
      throw err;
    }
    this.#size += buf.length;
  }

  /** Starts the next segment; the one before it is made durable first (rare: once per maxSegmentBytes). */
  #rotate(): void {
    if (this.#durability === "fsync") fsyncSync(this.#fd);
    const next = this.#segment + 1;
    createSegment(this.dir, this.writer, next, this.#durability);
    const fd = openSync(segmentPath(this.dir, next), fsConstants.O_WRONLY | fsConstants.O_APPEND);
    const old = this.#sync;
    closeSync(this.#fd);
    this.#fd = fd;
    this.#segment = next;
    this.#size = fstatSync(fd).size;
    this.#sync = this.#durability === "fsync" ? this.#newSync() : undefined;
    // the old segment is already durable (fsync above); failing to close its descriptor loses nothing
    old?.close().catch(() => undefined);
  }

  #newSync(): WalSync {
    return new WalSync(segmentPath(this.dir, this.#segment), this.#fdatasync);
  }

  /** Writes what waits, makes it durable and releases the writer's lock. Later appends are refused. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#scheduled) this.#flush();
    this.#closed = true;
    try {
      await this.#sync?.close();
      if (this.#durability === "os") fsyncSync(this.#fd);
    } finally {
      closeSync(this.#fd);
      releaseLock(this.dir);
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Creates segment n with its header line, durably (the file and its directory entry). */
function createSegment(dir: string, writer: string, n: number, durability: SegmentDurability): void {
  const path = segmentPath(dir, n);
  writeFileSync(path, headerLine({ format: SEGMENT_FORMAT, segment: n, writer }), { flag: "wx", mode: 0o600 });
  if (durability === "fsync") {
    const fd = openSync(path, fsConstants.O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const d = openSync(dir, fsConstants.O_RDONLY);
    try {
      fsyncSync(d);
    } finally {
      closeSync(d);
    }
  }
}

/**
 * Cuts a torn tail off the last segment: an incomplete last line, and complete lines at the end that do not
 * parse or hash (a write cut short can leave zeros or a partial line followed by a newline). A bad line with a
 * good one after it is damage, not a torn write: refused.
 */
function cutTornTail(path: string, segment: number): Omit<Recovery, "segments"> {
  const chunk = readSegmentLines(path);
  let good = chunk.lines.length;
  let firstBad = -1;
  for (let i = 0; i < chunk.lines.length; i++) {
    let ok = true;
    try {
      parseLine(chunk.lines[i]!.line, true);
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      ok = false;
    }
    if (!ok && firstBad < 0) firstBad = i;
    if (ok && firstBad >= 0) {
      throw new Error(
        `evidence segment ${path} has a damaged line at byte ${chunk.lines[firstBad]!.offset} followed by good ` +
          "ones; it is not a torn write, so the gateway will not append to it: run `gatehouse audit verify`",
      );
    }
  }
  if (firstBad >= 0) good = firstBad;
  const keep = good === 0 ? (chunk.lines.length === 0 ? 0 : chunk.lines[0]!.offset) : chunk.lines[good - 1]!.end;
  const size = chunk.end + chunk.trailing;
  if (keep >= size) return { cutBytes: 0 };
  // keep === 0: not even the header was written whole; the segment starts again from its header
  const fd = openSync(path, fsConstants.O_WRONLY);
  try {
    ftruncateSync(fd, keep);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { cutBytes: size - keep, cutAt: { segment, offset: keep } };
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes the writer's lock file (O_EXCL). A lock whose process is gone (a crash, kill -9) is stale and taken
 * over; one held by a live process is not. A reused pid can make a stale lock look held: another writer name
 * is used then, which is safe.
 */
function takeLock(dir: string): boolean {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(readFileSync(path, "utf8").trim());
    if (pidAlive(holder)) return false;
    try {
      unlinkSync(path);
    } catch {
      // another process took it over first
    }
  }
  return false;
}

function releaseLock(dir: string): void {
  try {
    const path = join(dir, LOCK_FILE);
    if (existsSync(path) && Number(readFileSync(path, "utf8").trim()) === process.pid) unlinkSync(path);
  } catch {
    // best effort: a stale lock is taken over at the next start
  }
}

/** The first writer name w1, w2, ... whose lock is free. */
function pickWriter(root: string): string {
  for (let n = 1; n < 1000; n++) {
    const name = `w${n}`;
    const lock = join(root, name, LOCK_FILE);
    if (!existsSync(lock)) return name;
    const holder = Number(readFileSync(lock, "utf8").trim());
    if (!pidAlive(holder) && holder !== process.pid) return name;
  }
  throw new Error("no free evidence writer name");
}
