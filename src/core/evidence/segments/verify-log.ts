/**
 * Verifies the evidence log (segment files, the source of truth) writer by writer, and checks that the SQLite
 * index built from it agrees with it. verify.ts adds the legacy tables and builds the report; docs/evidence.md
 * ("The evidence log", "What verify checks") restates every rule here, and "Verifying a log with standard
 * tools" shows how to check them without Gatehouse.
 *
 * Lines are streamed: memory grows with the number of sessions (one small state each), never with the number
 * of records or events. Reading again happens only to diagnose a problem (which record a broken link points
 * to) and, once, to find signing keys that another writer's log holds.
 *
 * What is read is fixed when verification starts (each segment's size then), so a gateway may keep appending;
 * an index row newer than that is checked against the log as it is by then.
 */
import type { KeyObject } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Store } from "../../store/types.js";
import { CorruptRecordError } from "../../store/types.js";
import type { AuditRecord } from "../audit-event.js";
import { canonicalJson, sha256Hex, ZERO_HASH } from "../canonical.js";
import { auditRecordHash, recordingEventHash, sealPayload, sealRecord, sessionHeadHash } from "../chain.js";
import type { Checkpoint, SessionHeader, SessionSeal } from "../records.js";
import { keyIdOf, publicKeyFromPem, verifyCanonical } from "../signing.js";
import type { AuditProblem, AuditProblemReason, SessionProblem } from "../verify.js";
import { LineError, parseLine, SEGMENT_FORMAT, segmentFileName, type ParsedLine } from "./format.js";
import { REQUEST_RECORD_TYPES, referenceIn, referenceProblem, type ReferencedRecord } from "../request-reference.js";
import { parseCheckpointNote, verifyCheckpointNote, type SignedCheckpoint } from "./note.js";
import { evidenceDir, listSegments, listWriters, readSegmentLines, segmentPath, type SegmentLine } from "./reader.js";

export interface SessionCounts {
  verified: number;
  sealed: number;
  unsealed: number;
}

/** One chain's totals: a writer's, or the legacy tables'. */
export interface ChainSummary {
  records: number;
  first_seq?: number;
  last_seq?: number;
  last_hash?: string;
  /** Checkpoints whose signature and hash verified. */
  checkpoints: number;
  last_checkpoint_seq?: number;
  /** Records after the last valid checkpoint: chained but not yet signed. */
  unsigned_tail: number;
}

export interface WriterReport extends ChainSummary {
  writer: string;
  /** Segment files read. */
  segments: number;
  /** Bytes after the last complete line of the last segment (a write cut short: a warning, not a failure). */
  torn_tail_bytes: number;
  sessions: SessionCounts;
  /** The first problem of this writer's chain; checking its chain stops there (its sessions go on). */
  error?: AuditProblem;
}

export interface LogIndexReport {
  /** False when there is nothing to compare with (no gatehouse.db, or one without the log's index tables). */
  compared: boolean;
  /** Index rows found equal to the log. */
  records: number;
  checkpoints: number;
  sessions: number;
  /** Log records the index does not hold yet: it follows the log and may lag behind it (not a problem). */
  unindexed: number;
  /** Disagreements, at most one per writer: `index disagrees with the log at writer w1 seq 17: ...`. */
  problems: string[];
}

export interface LogVerifyReport {
  writers: WriterReport[];
  /** Keys trusted for the log: the pinned one, or those its `k` lines hold (whose ids match their bytes). */
  key_ids: string[];
  bad_sessions: SessionProblem[];
  warnings: string[];
  index?: LogIndexReport;
}

export interface LogVerifyOptions {
  /** Trust only this key instead of the keys the log holds. */
  publicKey?: KeyObject;
  /** The data dir's store (opened read-only): its index of the log is compared with the segments. */
  index?: Store;
}

export interface LogVerifyResult {
  report: LogVerifyReport;
  /** Ids of the sessions recorded in the log (the legacy check leaves their index rows alone). */
  sessionIds: Set<string>;
}

/** Bytes read per step: what a walk holds in memory besides its session states. */
const CHUNK_BYTES = 4 * 1024 * 1024;
const INDEX_PAGE = 1000;
/** Hashes of this many latest records are kept for checkpoints that name an earlier record. */
const RECENT_HASHES = 1024;
/**
 * Request records kept for the recording events that refer to them (a request event is recorded right after its
 * record is written, so its reference is nearly always to one of the latest); an older one is read again.
 */
const RECENT_REQUESTS = 65_536;

interface Extent {
  n: number;
  name: string;
  path: string;
  /** The file's size when verification started: reading stops there. */
  size: number;
}

/** A writer's segments as they are now. */
function snapshot(dir: string): Extent[] {
  return listSegments(dir).map((n) => {
    const path = segmentPath(dir, n);
    return { n, name: segmentFileName(n), path, size: statSync(path).size };
  });
}

/** Complete lines from extent `i` at `offset` to the end of the last extent, one chunk at a time. */
function* linesFrom(extents: readonly Extent[], i: number, offset: number): Generator<SegmentLine> {
  for (let j = i; j < extents.length; j++) {
    const ext = extents[j]!;
    let from = j === i ? offset : 0;
    for (;;) {
      const chunk = readSegmentLines(ext.path, from, ext.size, CHUNK_BYTES);
      if (chunk.lines.length === 0) break;
      yield* chunk.lines;
      from = chunk.end;
    }
  }
}

/** The `a` line of record `seq`, as a referenced record (not checked: the walk checks every record). */
function recordAt(lines: Iterable<SegmentLine>, seq: number): ReferencedRecord | undefined {
  for (const l of lines) {
    if (!l.line.startsWith("a ")) continue;
    try {
      const p = parseLine(l.line);
      if (p.tag === "a" && p.value["seq"] === seq) return referenced(p.hash, p.value);
    } catch {
      // damaged lines are the walk's to report
    }
  }
  return undefined;
}

function referenced(hash: string, v: Record<string, unknown>): ReferencedRecord {
  return { hash, type: String(v["type"]), session_id: str(v["session_id"]) };
}

/** The `a` lines' seq and hash, without checking them (diagnosis reads ahead with it). */
function* auditHeads(lines: Iterable<SegmentLine>): Generator<{ seq: number; hash: string }> {
  for (const l of lines) {
    if (!l.line.startsWith("a ")) continue;
    try {
      const p = parseLine(l.line);
      if (p.tag === "a" && typeof p.value["seq"] === "number") yield { seq: p.value["seq"], hash: p.hash };
    } catch {
      // damaged lines are the walk's to report
    }
  }
}

/** Index rows beyond the log that verification read, checked against the log as it has grown since. */
const MAX_BEYOND = 10 * INDEX_PAGE;

function checkpointSeq(note: string): number {
  try {
    return parseCheckpointNote(note).seq;
  } catch {
    return -1;
  }
}

/**
 * A writer's log read on from a position while it may still grow: every call reads what the files hold at
 * that moment (a line the index has must have been in the files before the index row was read), going on to
 * the next segment once it exists.
 */
export class LogTail {
  #segment: number;
  #offset: number;
  #lines: SegmentLine[] = [];
  #i = 0;

  constructor(
    private readonly dir: string,
    segment: number,
    offset: number,
  ) {
    this.#segment = segment;
    this.#offset = offset;
  }

  /** The next complete line, or undefined when the log holds none beyond it now. */
  next(): SegmentLine | undefined {
    for (;;) {
      if (this.#i < this.#lines.length) return this.#lines[this.#i++];
      const path = segmentPath(this.dir, this.#segment);
      const chunk = existsSync(path)
        ? readSegmentLines(path, this.#offset, undefined, CHUNK_BYTES)
        : { lines: [], end: this.#offset, trailing: 0 };
      this.#lines = chunk.lines;
      this.#i = 0;
      this.#offset = chunk.end;
      if (chunk.lines.length > 0) continue;
      // a later segment is started only once this one is finished
      if (!existsSync(segmentPath(this.dir, this.#segment + 1))) return undefined;
      this.#segment++;
      this.#offset = 0;
    }
  }

  /** The next parsed line that `match` accepts (unreadable lines are skipped: the walk reports them). */
  find(match: (p: ParsedLine) => boolean): ParsedLine | undefined {
    for (let l = this.next(); l !== undefined; l = this.next()) {
      let p: ParsedLine;
      try {
        p = parseLine(l.line);
      } catch {
        continue;
      }
      if (match(p)) return p;
    }
    return undefined;
  }
}

type HashedLine = Extract<ParsedLine, { hash: string }>;

class Problem extends Error {
  constructor(readonly problem: AuditProblem) {
    super(problem.message);
  }
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** The keys checkpoints and seals may be signed with: the pinned one, or every valid `k` line of any writer. */
class KeyRing {
  readonly #keys = new Map<string, KeyObject>();
  readonly #seen = new Set<string>();
  #discovered = false;

  constructor(
    readonly pinned: KeyObject | undefined,
    private readonly discover: (ring: KeyRing) => void,
    private readonly warnings: string[],
  ) {
    if (pinned) this.#keys.set(keyIdOf(pinned), pinned);
  }

  /** A `k` line. Without a pinned key a key whose id matches its bytes is trusted; otherwise only noted. */
  add(writer: string, value: Record<string, unknown>): void {
    if (this.pinned) return;
    const id = str(value["key_id"]) ?? "?";
    const pem = str(value["public_key"]);
    const seenAs = `${id}\n${pem ?? ""}`;
    if (this.#seen.has(seenAs)) return;
    this.#seen.add(seenAs);
    try {
      if (value["algorithm"] !== "ed25519" || pem === undefined) throw new Error("not an Ed25519 key record");
      const key = publicKeyFromPem(pem);
      if (keyIdOf(key) !== id) {
        this.warnings.push(`writer ${writer}: signing key ${id}: id does not match the key`);
        return;
      }
      this.#keys.set(id, key);
    } catch {
      this.warnings.push(`writer ${writer}: signing key ${id}: unreadable public key`);
    }
  }

  /** The key with this id; the first unknown id makes every writer's log be searched for `k` lines once. */
  get(id: string): KeyObject | undefined {
    const key = this.#keys.get(id);
    if (key || this.pinned || this.#discovered) return key;
    this.#discovered = true;
    this.discover(this);
    return this.#keys.get(id);
  }

  ids(): string[] {
    return [...this.#keys.keys()];
  }
}

/** Rows of the index in seq order, a page at a time, with a look-ahead of one. */
class RowCursor<T extends { seq: number }> {
  #page: T[] = [];
  #i = 0;
  #from: number;
  #done = false;

  constructor(
    private readonly fetch: (fromSeq: number) => Promise<T[]>,
    from = 0,
  ) {
    this.#from = from;
  }

  async peek(): Promise<T | undefined> {
    if (this.#i >= this.#page.length && !this.#done) {
      this.#page = await this.fetch(this.#from);
      this.#i = 0;
      if (this.#page.length < INDEX_PAGE) this.#done = true;
      const last = this.#page.at(-1);
      if (last) this.#from = last.seq + 1;
    }
    return this.#page[this.#i];
  }

  next(): void {
    this.#i++;
  }
}

class IndexDisagrees extends Error {}

/** A session's index rows as far as they go: how many events and the hash of the last. */
interface IndexedSession {
  events: number;
  lastHash: string;
}

/**
 * Compares one writer's index rows with its log while the log is walked: each record and checkpoint of the log
 * with the row of the same seq. The index is a prefix of the log (it follows it), so rows may stop early;
 * a row that differs, a gap, or a row the log lacks is a disagreement.
 */
class WriterIndex {
  readonly #audit: RowCursor<AuditRecord>;
  readonly #checkpoints: RowCursor<Checkpoint>;
  #auditEnded = false;
  #checkpointsEnded = false;
  #lastCheckpointRow: Checkpoint | undefined;
  failed = false;

  constructor(
    private readonly store: Store,
    private readonly writer: string,
    private readonly report: LogIndexReport,
  ) {
    this.#audit = new RowCursor((fromSeq) => store.readAudit({ writer, fromSeq, limit: INDEX_PAGE }));
    this.#checkpoints = new RowCursor((fromSeq) => store.listCheckpoints({ writer, fromSeq, limit: INDEX_PAGE }));
  }

  #disagree(at: string, detail: string): never {
    this.failed = true;
    this.report.problems.push(`index disagrees with the log at writer ${this.writer} ${at}: ${detail}`);
    throw new IndexDisagrees();
  }

  /** Runs a comparison; a disagreement is recorded and ends this writer's comparisons. */
  async check(fn: () => Promise<void>): Promise<void> {
    if (this.failed) return;
    try {
      await fn();
    } catch (err) {
      if (err instanceof IndexDisagrees) return;
      if (err instanceof CorruptRecordError) {
        this.failed = true;
        this.report.problems.push(
          `index disagrees with the log at writer ${this.writer} ${/seq \d+/.exec(err.key)?.[0] ?? err.key}: ` +
            `unreadable row (${err.message})`,
        );
        return;
      }
      throw err;
    }
  }

  /** Skips rows before the first record of a log whose earlier segments were removed. */
  async skipBefore(seq: number): Promise<void> {
    for (let r = await this.#audit.peek(); r && r.seq < seq; r = await this.#audit.peek()) this.#audit.next();
    for (let c = await this.#checkpoints.peek(); c && c.seq < seq; c = await this.#checkpoints.peek()) {
      this.#checkpoints.next();
    }
  }

  async record(seq: number, hash: string): Promise<void> {
    const row = await this.#audit.peek();
    if (row === undefined || this.#auditEnded) {
      this.#auditEnded = true;
      this.report.unindexed++;
      return;
    }
    if (row.seq < seq) this.#disagree(`seq ${row.seq}`, "the index holds a record the log lacks");
    if (row.seq > seq) this.#disagree(`seq ${seq}`, `the index lacks it but holds seq ${row.seq}`);
    this.#audit.next();
    if (row.writer !== this.writer || row.hash !== hash) {
      this.#disagree(`seq ${seq}`, `the index holds another record (hash ${row.hash}, the log's is ${hash})`);
    }
    if (auditRecordHash(row) !== row.hash) {
      this.#disagree(`seq ${seq}`, "the indexed record does not hash to its hash (the row was changed)");
    }
    this.report.records++;
  }

  async checkpoint(cp: SignedCheckpoint): Promise<void> {
    // the index keeps one row per seq: a repeated checkpoint (the same note again) matches the row already seen
    if (this.#lastCheckpointRow?.seq === cp.seq) {
      if (this.#lastCheckpointRow.note !== cp.note) {
        this.#disagree(`checkpoint seq ${cp.seq}`, "the index holds another checkpoint note");
      }
      return;
    }
    const row = await this.#checkpoints.peek();
    if (row === undefined || this.#checkpointsEnded) {
      this.#checkpointsEnded = true;
      return;
    }
    if (row.seq < cp.seq) this.#disagree(`checkpoint seq ${row.seq}`, "the index holds a checkpoint the log lacks");
    if (row.seq > cp.seq) {
      this.#disagree(`checkpoint seq ${cp.seq}`, `the index lacks it but holds the checkpoint at seq ${row.seq}`);
    }
    this.#checkpoints.next();
    this.#lastCheckpointRow = row;
    if (
      row.note !== cp.note ||
      row.hash !== cp.hash ||
      row.time !== cp.time ||
      row.signature !== cp.signature ||
      row.key_id !== cp.key_id
    ) {
      this.#disagree(`checkpoint seq ${cp.seq}`, "the index holds another checkpoint");
    }
    this.report.checkpoints++;
  }

  /**
   * After the walk: rows beyond what was read must be records and checkpoints that the log holds by now (a
   * running gateway appended them while verify read, and the index followed). `tail` reads the log on from where
   * the walk stopped, as it grows. At most MAX_BEYOND rows are checked: a log that grows faster than verify reads
   * is checked up to where verification started, and a little beyond.
   */
  async finish(tail: () => LogTail): Promise<void> {
    let row = await this.#audit.peek();
    if (row !== undefined && !this.#auditEnded) {
      const later = tail();
      for (let n = 0; row !== undefined && n < MAX_BEYOND; row = await this.#audit.peek(), n++) {
        const want = row.seq;
        const found = later.find((l) => l.tag === "a" && Number(l.value["seq"]) >= want);
        if (found?.tag !== "a" || found.value["seq"] !== want) {
          this.#disagree(`seq ${want}`, "the index holds a record the log lacks");
        }
        if (found.hash !== row.hash || auditRecordHash(row) !== row.hash) {
          this.#disagree(`seq ${want}`, "the index holds another record than the log");
        }
        this.#audit.next();
      }
    }
    let cp = await this.#checkpoints.peek();
    if (cp !== undefined && !this.#checkpointsEnded) {
      const later = tail();
      for (let n = 0; cp !== undefined && n < MAX_BEYOND; cp = await this.#checkpoints.peek(), n++) {
        const want = cp.seq;
        const found = later.find((l) => l.tag === "c" && checkpointSeq(l.note) >= want);
        if (found?.tag !== "c" || found.note !== cp.note) {
          this.#disagree(`checkpoint seq ${want}`, "the index holds a checkpoint the log lacks");
        }
        this.#checkpoints.next();
      }
    }
  }

  /** At a session's header: the indexed session, its header and its event chain, checked; undefined: not indexed. */
  async sessionStart(id: string, headHash: string): Promise<IndexedSession | undefined> {
    const rec = await this.store.getSession(id);
    if (rec === undefined) return undefined;
    if (sessionHeadHash(rec) !== headHash) this.#disagree(`session ${id}`, "the index holds another header");
    let events = 0;
    let lastHash = headHash;
    for (;;) {
      const page = await this.store.readRecordingEvents(id, { fromSeq: events + 1, limit: INDEX_PAGE });
      for (const ev of page) {
        events++;
        if (ev.seq !== events || ev.prev_hash !== lastHash || recordingEventHash(ev) !== ev.hash) {
          this.#disagree(`session ${id} event ${events}`, "the indexed events do not form a chain");
        }
        lastHash = ev.hash;
      }
      if (page.length < INDEX_PAGE) break;
    }
    this.report.sessions++;
    return { events, lastHash };
  }

  /** The log's event `n` of a session: where the index's events end, their hash must be the log's. */
  sessionEvent(id: string, s: IndexedSession, n: number, hash: string): void {
    if (n === s.events && s.lastHash !== hash) {
      this.#disagree(`session ${id} event ${n}`, "the index holds another event");
    }
  }

  async sessionSeal(id: string, seal: SessionSeal): Promise<void> {
    const rec = await this.store.getSession(id);
    if (rec?.seal !== undefined && canonicalJson(sealRecord(rec.seal)) !== canonicalJson(sealRecord(seal))) {
      this.#disagree(`session ${id}`, "the index holds another seal");
    }
  }

  /** At the end of a sealed session: the index may not hold more events than the log. */
  sessionEnd(id: string, s: IndexedSession, n: number): void {
    if (s.events > n) this.#disagree(`session ${id} event ${n + 1}`, "the index holds an event the log lacks");
  }
}

interface SessionState {
  headHash: string;
  prevHash: string;
  events: number;
  lastT: number;
  sealed: boolean;
  problem?: string;
  index?: IndexedSession;
}

interface Context {
  keys: KeyRing;
  warnings: string[];
  badSessions: SessionProblem[];
  sessionIds: Set<string>;
  index?: LogIndexReport;
  store?: Store;
}

/** One writer's log, walked line by line. */
class WriterWalk {
  readonly report: WriterReport;
  readonly #extents: Extent[];
  readonly #ctx: Context;
  readonly #index: WriterIndex | undefined;
  /** Where the walk is: extent and the current line. */
  #i = 0;
  #line: SegmentLine = { line: "", offset: 0, end: 0 };
  #lineNo = 0;
  /** A run of unreadable lines not yet followed by a readable one: damage, or (at the very end) a torn tail. */
  #bad: { i: number; offset: number; lineNo: number; why: string } | undefined;
  #prev: { seq: number; hash: string } | undefined;
  #prevPrevHash: string | undefined;
  #lastGoodCp = 0;
  readonly #recent = new Map<number, string>();
  /** The latest request records, by seq, for the recording events that refer to them. */
  readonly #requests = new Map<number, ReferencedRecord>();
  /** Valid checkpoints beyond the last record read so far, by seq: checked when their record arrives. */
  #pending: SignedCheckpoint[] = [];
  readonly #sessions = new Map<string, SessionState>();

  constructor(
    readonly writer: string,
    readonly dir: string,
    ctx: Context,
  ) {
    this.#ctx = ctx;
    this.#extents = snapshot(dir);
    this.report = {
      writer,
      segments: this.#extents.length,
      records: 0,
      checkpoints: 0,
      unsigned_tail: 0,
      torn_tail_bytes: 0,
      sessions: { verified: 0, sealed: 0, unsealed: 0 },
    };
    if (ctx.store && ctx.index) this.#index = new WriterIndex(ctx.store, writer, ctx.index);
  }

  get extents(): readonly Extent[] {
    return this.#extents;
  }

  get #stopped(): boolean {
    return this.report.error !== undefined;
  }

  #fail(seq: number, reason: AuditProblemReason, message: string, toSeq?: number): never {
    const ext = this.#extents[this.#i];
    throw new Problem({
      seq,
      reason,
      message: `writer ${this.writer}: ${message}`,
      writer: this.writer,
      ...(toSeq !== undefined ? { to_seq: toSeq } : {}),
      ...(ext ? { segment: ext.name, offset: this.#line.offset } : {}),
    });
  }

  /** Runs a check; the first Problem becomes this writer's error. */
  #guard(fn: () => void): void {
    if (this.#stopped) return;
    try {
      fn();
    } catch (err) {
      if (!(err instanceof Problem)) throw err;
      this.report.error = err.problem;
    }
  }

  get #nextSeq(): number {
    return (this.#prev?.seq ?? 0) + 1;
  }

  async run(): Promise<void> {
    const first = this.#extents[0];
    if (first && first.n !== 1) {
      this.#ctx.warnings.push(
        `writer ${this.writer}: the log starts at segment ${first.name} (earlier segments were removed)`,
      );
    }
    for (let i = 0; i < this.#extents.length; i++) {
      const ext = this.#extents[i]!;
      const last = i === this.#extents.length - 1;
      this.#i = i;
      this.#lineNo = 0;
      this.#line = { line: "", offset: 0, end: 0 };
      const before = this.#extents[i - 1];
      if (before && ext.n !== before.n + 1) {
        this.#guard(() =>
          this.#fail(
            this.#nextSeq,
            "dropped",
            `segment ${segmentFileName(before.n + 1)} is missing (the segments jump from ${before.name} to ${ext.name})`,
          ),
        );
      }
      if (ext.size === 0) {
        if (last) this.#ctx.warnings.push(`writer ${this.writer}: segment ${ext.name} is empty`);
        else this.#guard(() => this.#fail(this.#nextSeq, "damaged", `segment ${ext.name} is empty`));
        continue;
      }
      let offset = 0;
      for (;;) {
        const chunk = readSegmentLines(ext.path, offset, ext.size, CHUNK_BYTES);
        for (const l of chunk.lines) {
          this.#line = l;
          this.#lineNo++;
          await this.#onLine(l);
        }
        if (chunk.lines.length === 0) break;
        offset = chunk.end;
      }
      if (offset < ext.size) {
        this.#line = { line: "", offset, end: ext.size };
        this.#badLine(offset, this.#lineNo + 1, "an incomplete line (no newline)");
      }
      // unreadable lines at the end of a segment that has a successor: not a torn write (that segment was
      // finished and made durable before the next one was started)
      if (!last && this.#bad) this.#damaged();
    }
    const lastExt = this.#extents.at(-1);
    if (this.#bad && lastExt) {
      if (this.#bad.offset === 0) this.#damaged();
      else {
        this.report.torn_tail_bytes = lastExt.size - this.#bad.offset;
        this.#ctx.warnings.push(
          `writer ${this.writer}: torn tail: ${this.report.torn_tail_bytes} byte(s) at the end of ${lastExt.name} ` +
            `after its last complete line (a write cut short by a crash, never acknowledged; the gateway cuts it ` +
            `at its next start)`,
        );
        this.#bad = undefined;
      }
    }
    this.#finishChain();
    await this.#finishIndex();
    this.#finishSessions();
  }

  #badLine(offset: number, lineNo: number, why: string): void {
    this.#bad ??= { i: this.#i, offset, lineNo, why };
  }

  /** The pending unreadable line is followed by readable ones (or a later segment): damage. */
  #damaged(): void {
    const bad = this.#bad;
    if (!bad) return;
    this.#bad = undefined;
    const ext = this.#extents[bad.i]!;
    const seq = this.#nextSeq;
    this.#guard(() => {
      const p: AuditProblem = {
        seq,
        reason: "damaged",
        message:
          `writer ${this.writer}: ${ext.name} line ${bad.lineNo} (byte ${bad.offset}): damaged line, ${bad.why}` +
          (this.#prev ? ` (after audit event seq ${this.#prev.seq})` : ""),
        writer: this.writer,
        segment: ext.name,
        offset: bad.offset,
      };
      throw new Problem(p);
    });
  }

  async #onLine(l: SegmentLine): Promise<void> {
    let p: ParsedLine;
    try {
      p = parseLine(l.line);
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      this.#badLine(l.offset, this.#lineNo, err.message);
      return;
    }
    if (this.#bad) this.#damaged();
    if (this.#lineNo === 1 || p.tag === "h") {
      this.#header(p);
      if (p.tag === "h") return;
    }
    switch (p.tag) {
      case "k":
        this.#ctx.keys.add(this.writer, p.value);
        return;
      case "a":
        await this.#audit(p);
        return;
      case "c":
        await this.#checkpoint(p.note);
        return;
      case "s":
        await this.#sessionHeader(p.value);
        return;
      case "r":
        await this.#recordingEvent(p);
        return;
      case "z":
        await this.#seal(p.value);
        return;
    }
  }

  #header(p: ParsedLine): void {
    const ext = this.#extents[this.#i]!;
    this.#guard(() => {
      const where = `${ext.name} line ${this.#lineNo}`;
      if (p.tag !== "h") this.#fail(this.#nextSeq, "damaged", `${ext.name} does not start with a segment header`);
      if (this.#lineNo !== 1) this.#fail(this.#nextSeq, "inserted", `${where}: a segment header inside a segment`);
      const v = p.value;
      if (v["format"] !== SEGMENT_FORMAT) {
        this.#fail(this.#nextSeq, "damaged", `${ext.name}: unknown format ${JSON.stringify(v["format"])}`);
      }
      if (v["segment"] !== ext.n) {
        this.#fail(this.#nextSeq, "damaged", `${ext.name}: its header says segment ${JSON.stringify(v["segment"])}`);
      }
      if (v["writer"] !== this.writer) {
        this.#fail(this.#nextSeq, "inserted", `${ext.name}: its header names writer ${JSON.stringify(v["writer"])}`);
      }
    });
  }

  // ---- the audit chain

  async #audit(p: HashedLine): Promise<void> {
    if (this.#stopped) return;
    let seq = 0;
    this.#guard(() => {
      seq = this.#checkRecord(p);
    });
    if (this.#stopped) return;
    const first = this.#prev === undefined;
    this.#prevPrevHash = this.#prev?.hash;
    this.#prev = { seq, hash: p.hash };
    this.report.records++;
    this.report.first_seq ??= seq;
    this.report.last_seq = seq;
    this.report.last_hash = p.hash;
    this.#recent.set(seq, p.hash);
    if (this.#recent.size > RECENT_HASHES) this.#recent.delete(this.#recent.keys().next().value!);
    if (REQUEST_RECORD_TYPES.has(p.value["type"] as string)) {
      this.#requests.set(seq, referenced(p.hash, p.value));
      if (this.#requests.size > RECENT_REQUESTS) this.#requests.delete(this.#requests.keys().next().value!);
    }
    const index = this.#index;
    if (index) {
      if (first && seq !== 1) await index.check(() => index.skipBefore(seq));
      await index.check(() => index.record(seq, p.hash));
    }
    while (this.#pending[0] !== undefined && this.#pending[0].seq <= seq) {
      const cp = this.#pending.shift()!;
      this.#guard(() => this.#checkHash(cp, cp.seq === seq ? p.hash : this.#hashAt(cp.seq)));
      if (this.#stopped) return;
      await this.#accept(cp);
    }
  }

  /** Checks one record against the chain so far; returns its seq or throws the Problem. */
  #checkRecord(p: HashedLine): number {
    const v = p.value;
    const prev = this.#prev;
    const selfOk = sha256Hex(p.text) === p.hash;
    const seq = v["seq"];
    const e = this.#nextSeq;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
      if (!selfOk) this.#fail(e, "changed", `audit event seq ${e}: hash mismatch (record was changed)`);
      this.#fail(e, "inserted", `audit event seq ${e}: inserted (a record with seq ${JSON.stringify(seq)} follows it)`);
    }
    if (prev === undefined) {
      if (seq !== 1) {
        if (this.#extents[0]?.n === 1) {
          this.#fail(1, "dropped", `audit event seq 1: dropped (the writer's first record is seq ${seq})`);
        }
        this.#ctx.warnings.push(
          `writer ${this.writer}: the log starts at seq ${seq} (earlier segments were removed); verified from there`,
        );
      }
    } else if (seq !== e) {
      if (seq > e) {
        const later = this.#findLater((r) => r.seq === e);
        if (later) this.#fail(e, "reordered", `audit event seq ${e}: out of order (it comes after seq ${seq})`);
        this.#fail(e, "dropped", `audit event seq ${e}: dropped (the log jumps from seq ${prev.seq} to ${seq})`);
      }
      if (seq === prev.seq && v["prev_hash"] === this.#prevPrevHash) {
        this.#fail(seq, "inserted", `audit event seq ${seq}: inserted (the record after it repeats seq ${seq})`);
      }
      this.#fail(e, "inserted", `audit event seq ${e}: inserted (a record with seq ${seq} follows seq ${prev.seq})`);
    }
    const prevHash = v["prev_hash"];
    const expected = prev ? prev.hash : seq === 1 ? ZERO_HASH : prevHash;
    if (prevHash !== expected) this.#diagnoseLink(p, seq, selfOk);
    if (!selfOk) this.#fail(seq, "changed", `audit event seq ${seq}: hash mismatch (record was changed)`);
    if (v["writer"] !== this.writer) {
      this.#fail(seq, "inserted", `audit event seq ${seq}: a record of writer ${JSON.stringify(v["writer"])}`);
    }
    if (canonicalJson(v) !== p.text) {
      this.#fail(seq, "changed", `audit event seq ${seq}: not canonical JSON (rewritten, its hash recomputed)`);
    }
    return seq;
  }

  /** Why a record does not link to its predecessor. Always throws. */
  #diagnoseLink(p: HashedLine, seq: number, selfOk: boolean): never {
    const prev = this.#prev;
    const prevHash = p.value["prev_hash"];
    if (prev && this.#prevPrevHash !== undefined && prevHash === this.#prevPrevHash) {
      this.#fail(prev.seq, "inserted", `audit event seq ${prev.seq}: inserted (seq ${seq} links past it)`);
    }
    const later = this.#findLater((r) => r.hash === prevHash);
    if (later) {
      this.#fail(
        seq,
        "reordered",
        `audit event seq ${seq}: out of order (it links to the event now at seq ${later.seq})`,
      );
    }
    if (!selfOk && sha256Hex(canonicalJson({ ...p.value, seq: seq + 1 })) === p.hash) {
      this.#fail(seq, "dropped", `audit event seq ${seq}: dropped (later events were renumbered)`);
    }
    if (selfOk && prev) {
      this.#fail(
        prev.seq,
        "changed",
        `audit event seq ${prev.seq}: changed (its hash was recomputed; seq ${seq} still links to the original)`,
      );
    }
    return this.#fail(
      seq,
      "chain-broken",
      prev
        ? `audit event seq ${seq}: prev_hash does not match the hash of seq ${prev.seq}`
        : `audit event seq ${seq}: prev_hash is not the chain start`,
    );
  }

  /** The first record after the current line that `match` accepts (diagnosis only: reads ahead). */
  #findLater(match: (r: { seq: number; hash: string }) => boolean): { seq: number; hash: string } | undefined {
    for (const r of auditHeads(linesFrom(this.#extents, this.#i, this.#line.end))) if (match(r)) return r;
    return undefined;
  }

  /** The hash of an earlier record: kept for the latest ones, else read again from the start. */
  #hashAt(seq: number): string | undefined {
    const h = this.#recent.get(seq);
    if (h !== undefined) return h;
    for (const r of auditHeads(linesFrom(this.#extents, 0, 0))) if (r.seq === seq) return r.hash;
    return undefined;
  }

  async #checkpoint(note: string): Promise<void> {
    if (this.#stopped) return;
    let cp: SignedCheckpoint | undefined;
    this.#guard(() => {
      let parsed: SignedCheckpoint;
      const after = this.#prev ? `after audit event seq ${this.#prev.seq}` : "before the first audit event";
      try {
        parsed = parseCheckpointNote(note);
      } catch (err) {
        return this.#fail(
          this.#nextSeq,
          "checkpoint-signature",
          `checkpoint ${after}: not a valid signed note (${describe(err)})`,
        );
      }
      if (parsed.writer !== this.writer) {
        this.#fail(parsed.seq, "inserted", `checkpoint at seq ${parsed.seq}: signed for writer ${parsed.writer}`);
      }
      const key = this.#ctx.keys.get(parsed.key_id);
      if (!key) {
        this.#fail(
          parsed.seq,
          "checkpoint-key",
          `checkpoint at seq ${parsed.seq}: ` +
            (this.#ctx.keys.pinned ? "not signed by the pinned key" : `signed by unknown key ${parsed.key_id}`),
        );
      }
      if (!verifyCheckpointNote(note, key)) {
        this.#fail(
          parsed.seq,
          "checkpoint-signature",
          `checkpoint at seq ${parsed.seq}: signature does not verify (forged or altered)`,
        );
      }
      const last = this.#prev?.seq ?? 0;
      if (parsed.seq > last) {
        // its record is not there (yet): checked when it comes, else the records it vouches for were dropped
        this.#pending.push(parsed);
        this.#pending.sort((a, b) => a.seq - b.seq);
        return;
      }
      if (parsed.seq >= (this.report.first_seq ?? 1)) this.#checkHash(parsed, this.#hashAt(parsed.seq));
      cp = parsed;
    });
    if (cp) await this.#accept(cp);
  }

  /** A valid signature over another hash than the chain's: the range it covers was changed and recomputed. */
  #checkHash(cp: SignedCheckpoint, hash: string | undefined): void {
    if (hash === undefined || cp.hash === hash) return;
    const from = Math.max(this.#lastGoodCp + 1, this.report.first_seq ?? 1);
    this.#fail(
      from,
      "rehashed",
      `audit events seq ${from}..${cp.seq}: chain does not match the signed checkpoint at seq ${cp.seq} ` +
        "(an event was changed and the chain recomputed)",
      cp.seq,
    );
  }

  async #accept(cp: SignedCheckpoint): Promise<void> {
    this.report.checkpoints++;
    this.#lastGoodCp = Math.max(this.#lastGoodCp, cp.seq);
    this.report.last_checkpoint_seq = this.#lastGoodCp;
    const index = this.#index;
    if (index) await index.check(() => index.checkpoint(cp));
  }

  #finishChain(): void {
    const cp = this.#pending[0];
    if (cp) {
      const e = this.#nextSeq;
      this.#guard(() =>
        this.#fail(e, "dropped", `audit event seq ${e}: dropped (a signed checkpoint covers up to seq ${cp.seq})`),
      );
    }
    const r = this.report;
    r.unsigned_tail = (r.last_seq ?? 0) - Math.max(this.#lastGoodCp, (r.first_seq ?? 1) - 1);
    if (!r.error && r.records > 0 && r.checkpoints === 0) {
      this.#ctx.warnings.push(
        `writer ${this.writer}: no signed checkpoint: the chain is intact but nothing vouches for it`,
      );
    }
  }

  async #finishIndex(): Promise<void> {
    const index = this.#index;
    const ext = this.#extents.at(-1);
    if (!index || !ext || this.#stopped) return;
    // what the gateway appended since the walk read its part: from the end of its last complete line on
    const end = ext.size - this.report.torn_tail_bytes;
    await index.check(() => index.finish(() => new LogTail(this.dir, ext.n, end)));
  }

  // ---- session recordings

  async #sessionHeader(v: Record<string, unknown>): Promise<void> {
    const id = str(v["session_id"]);
    if (id === undefined) {
      this.#guard(() =>
        this.#fail(this.#nextSeq, "damaged", `${this.#where()}: a session header without a session id`),
      );
      return;
    }
    const existing = this.#sessions.get(id);
    if (existing || this.#ctx.sessionIds.has(id)) {
      if (existing) existing.problem ??= "its header is written twice";
      else
        this.#ctx.badSessions.push({
          session_id: id,
          message: `writer ${this.writer}: session ${id}: recorded by another writer too`,
        });
      return;
    }
    this.#ctx.sessionIds.add(id);
    const headHash = sessionHeadHash(v as unknown as SessionHeader);
    const s: SessionState = { headHash, prevHash: headHash, events: 0, lastT: 0, sealed: false };
    this.#sessions.set(id, s);
    const index = this.#index;
    if (index) {
      await index.check(async () => {
        const indexed = await index.sessionStart(id, headHash);
        if (indexed) s.index = indexed;
      });
    }
  }

  #where(): string {
    return `${this.#extents[this.#i]!.name} line ${this.#lineNo}`;
  }

  #stateFor(id: string, what: string): SessionState {
    let s = this.#sessions.get(id);
    if (!s) {
      s = {
        headHash: "",
        prevHash: "",
        events: 0,
        lastT: 0,
        sealed: false,
        problem: `${what} without a session header`,
      };
      this.#sessions.set(id, s);
      this.#ctx.sessionIds.add(id);
    }
    return s;
  }

  async #recordingEvent(p: HashedLine): Promise<void> {
    const v = p.value;
    const id = str(v["session_id"]);
    if (id === undefined) {
      this.#guard(() =>
        this.#fail(this.#nextSeq, "damaged", `${this.#where()}: a recording event without a session id`),
      );
      return;
    }
    const s = this.#stateFor(id, "events");
    if (s.problem !== undefined) return;
    const n = s.events + 1;
    const t = v["t"];
    if (s.sealed) s.problem = `event ${n}: recorded after the seal`;
    else if (v["seq"] !== n) s.problem = `event ${n} is missing (next stored is ${JSON.stringify(v["seq"])})`;
    else if (v["prev_hash"] !== s.prevHash) s.problem = `event ${n}: chain broken (prev_hash does not match)`;
    else if (sha256Hex(p.text) !== p.hash) s.problem = `event ${n}: hash mismatch (event was changed)`;
    else if (typeof t !== "number" || !(t >= s.lastT)) s.problem = `event ${n}: time goes backwards`;
    else {
      const bad = this.#referenceProblem(id, { kind: String(v["kind"]), data: v["data"] });
      if (bad !== undefined) s.problem = `event ${n}: ${bad}`;
    }
    if (s.problem !== undefined) return;
    s.events = n;
    s.lastT = t as number;
    s.prevHash = p.hash;
    const index = this.#index;
    const indexed = s.index;
    if (index && indexed) await index.check(() => Promise.resolve(index.sessionEvent(id, indexed, n, p.hash)));
  }

  /** A request event that refers to its audit record: that record is in this writer's chain, of this session. */
  #referenceProblem(sessionId: string, ev: { kind: string; data: unknown }): string | undefined {
    const ref = referenceIn(ev);
    if (ref === undefined || typeof ref === "string") return ref;
    // past a break in this writer's chain (already its error) its records are not taken in any more
    if (this.#stopped) return undefined;
    const record =
      ref.writer !== this.writer
        ? undefined
        : (this.#requests.get(ref.seq) ?? recordAt(linesFrom(this.#extents, 0, 0), ref.seq));
    return referenceProblem(ref, sessionId, this.writer, record);
  }

  async #seal(v: Record<string, unknown>): Promise<void> {
    const id = str(v["session_id"]);
    if (id === undefined) {
      this.#guard(() => this.#fail(this.#nextSeq, "damaged", `${this.#where()}: a seal without a session id`));
      return;
    }
    const s = this.#stateFor(id, "a seal");
    if (s.problem !== undefined) return;
    if (s.sealed) {
      s.problem = "sealed twice";
      return;
    }
    s.sealed = true;
    const z = v as unknown as SessionSeal;
    const key = typeof z.key_id === "string" ? this.#ctx.keys.get(z.key_id) : undefined;
    if (!key) {
      s.problem = this.#ctx.keys.pinned
        ? "seal not signed by the pinned key"
        : `seal signed by unknown key ${String(z.key_id)}`;
    } else if (typeof z.signature !== "string" || !verifyCanonical(key, sealPayload(z), z.signature)) {
      s.problem = "seal signature does not verify";
    } else if (z.count !== s.events) {
      s.problem = `seal covers ${String(z.count)} events but ${s.events} are stored`;
    } else if (z.last_hash !== s.prevHash) {
      s.problem = "seal does not match the last event (recording was changed)";
    }
    const index = this.#index;
    if (index && s.problem === undefined) {
      await index.check(async () => {
        await index.sessionSeal(id, z);
        if (s.index) index.sessionEnd(id, s.index, s.events);
      });
    }
  }

  #finishSessions(): void {
    const counts = this.report.sessions;
    for (const [id, s] of this.#sessions) {
      if (s.problem !== undefined) {
        this.#ctx.badSessions.push({ session_id: id, message: `writer ${this.writer}: session ${id}: ${s.problem}` });
      } else counts.verified++;
      if (s.sealed) counts.sealed++;
      else counts.unsealed++;
    }
    this.#sessions.clear();
    if (counts.unsealed > 0) {
      this.#ctx.warnings.push(
        `writer ${this.writer}: ${counts.unsealed} session(s) not sealed (still running, or the gateway stopped)`,
      );
    }
  }
}

/** Every `k` line of every writer's log (the walk asks once, when a checkpoint or seal names an unknown key). */
function discoverKeys(walks: readonly WriterWalk[]): (ring: KeyRing) => void {
  return (ring) => {
    for (const w of walks) {
      for (const l of linesFrom(w.extents, 0, 0)) {
        if (!l.line.startsWith("k ")) continue;
        try {
          const p = parseLine(l.line);
          if (p.tag === "k") ring.add(w.writer, p.value);
        } catch {
          // the walk reports damaged lines
        }
      }
    }
  };
}

/** True when the index has the log's tables (a store migrated before them has not). */
async function hasLogIndex(store: Store): Promise<boolean> {
  try {
    await store.readAudit({ writer: "", limit: 1 });
    await store.listCheckpoints({ writer: "", limit: 1 });
    return true;
  } catch (err) {
    if (/no such table/i.test(describe(err))) return false;
    throw err;
  }
}

/**
 * Verifies every writer's segments under DATA/evidence (see the file comment) and, with `options.index`, that
 * the index agrees with them. Reads only.
 */
export async function verifyLog(dataDir: string, options: LogVerifyOptions = {}): Promise<LogVerifyResult> {
  const report: LogVerifyReport = { writers: [], key_ids: [], bad_sessions: [], warnings: [] };
  const sessionIds = new Set<string>();
  const walks: WriterWalk[] = [];
  const keys = new KeyRing(options.publicKey, (ring) => discoverKeys(walks)(ring), report.warnings);
  const ctx: Context = { keys, warnings: report.warnings, badSessions: report.bad_sessions, sessionIds };
  if (options.index) {
    report.index = { compared: false, records: 0, checkpoints: 0, sessions: 0, unindexed: 0, problems: [] };
    if (await hasLogIndex(options.index)) {
      report.index.compared = true;
      ctx.index = report.index;
      ctx.store = options.index;
    } else {
      report.warnings.push("the index has no tables for the evidence log (a store from before it): not compared");
    }
  }
  for (const writer of listWriters(dataDir))
    walks.push(new WriterWalk(writer, join(evidenceDir(dataDir), writer), ctx));
  for (const w of walks) {
    await w.run();
    report.writers.push(w.report);
  }
  report.key_ids = keys.ids();
  return { report, sessionIds };
}
