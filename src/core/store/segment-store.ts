/**
 * The gateway's Store: evidence is appended to this process's segment log (the source of truth), and a SQLite
 * database, filled from the segments by the store's worker thread, indexes it for readers. Approvals and other
 * state live in the database only.
 *
 * Writes (audit commits, recording writes) are encoded lines handed to the SegmentWriter: one write per turn of
 * the event loop and, with durability `fsync`, one fdatasync off the loop; each resolves once durable. Nothing
 * on the write path touches SQLite.
 *
 * Reads never see a stale index: each read first has the worker index everything durable so far (the index
 * plus the not-yet-indexed tail). Between reads the worker indexes in the background, in batches.
 */
import type { ApprovalQuery, ApprovalRecord } from "../approvals/types.js";
import type { AuditRecord } from "../evidence/audit-event.js";
import { canonicalize, canonicalJson } from "../evidence/canonical.js";
import {
  encodedAuditRecordText,
  encodedRecordingEventText,
  sealRecord,
  sessionHeaderFields,
} from "../evidence/chain.js";
import type { Checkpoint, RecordingEvent, SessionHeader, SessionRecord, SessionSeal } from "../evidence/records.js";
import { checkpointLine, hashedLine, jsonLine } from "../evidence/segments/format.js";
import { parseCheckpointNote } from "../evidence/segments/note.js";
import { listWriters, scanBackwards } from "../evidence/segments/reader.js";
import type { LogPosition, Recovery, SegmentWriter } from "../evidence/segments/writer.js";
import type { SigningKeyRecord } from "../evidence/signing.js";
import type { KyselyStore } from "./kysely-store.js";
import type { WorkerSqliteClient } from "./sqlite-client.js";
import type {
  AuditCommit,
  EncodedRecordingEvent,
  PageOptions,
  RecordingWrite,
  SessionListOptions,
  Store,
} from "./types.js";

export interface SegmentStoreParts {
  dataDir: string;
  log: SegmentWriter;
  index: KyselyStore;
  client: WorkerSqliteClient;
  /** Background indexing at most this often while the log grows (default 100 ms). */
  indexEveryMs?: number;
}

export class SegmentStore implements Store {
  readonly kind = "sqlite" as const;
  readonly location: string;
  readonly writer: string;
  readonly #dataDir: string;
  readonly #log: SegmentWriter;
  readonly #index: KyselyStore;
  readonly #client: WorkerSqliteClient;
  readonly #indexEveryMs: number;
  #lastAudit: AuditRecord | undefined;
  #lastCheckpoint: Checkpoint | undefined;
  readonly #keysWritten = new Set<string>();
  #indexTimer: NodeJS.Timeout | undefined;
  #indexRun: Promise<void> | undefined;
  #indexedTo: LogPosition = { segment: 0, offset: 0 };
  #closed = false;

  constructor(parts: SegmentStoreParts) {
    this.#dataDir = parts.dataDir;
    this.#log = parts.log;
    this.#index = parts.index;
    this.#client = parts.client;
    this.#indexEveryMs = parts.indexEveryMs ?? 100;
    this.writer = parts.log.writer;
    this.location = parts.log.dir;
    this.#readHeads();
    this.#log.onDurable(() => this.#scheduleIndex());
  }

  /** What opening the log found: a torn tail it cut, if any. */
  get recovery(): Recovery {
    return this.#log.recovery;
  }

  /** This writer's last record and checkpoint, from its own segments (the index may lag). */
  #readHeads(): void {
    scanBackwards(this.#log.dir, (line) => {
      if (line.tag === "a" && this.#lastAudit === undefined) {
        this.#lastAudit = { ...(line.value as unknown as AuditRecord), hash: line.hash };
      }
      if (line.tag === "c" && this.#lastCheckpoint === undefined) {
        try {
          this.#lastCheckpoint = parseCheckpointNote(line.note);
        } catch {
          // verify reports it; the next checkpoint supersedes it
        }
      }
      return this.#lastAudit !== undefined && this.#lastCheckpoint !== undefined;
    });
  }

  #keyLine(key: SigningKeyRecord | undefined): string {
    if (key === undefined || this.#keysWritten.has(key.key_id)) return "";
    return jsonLine("k", canonicalJson(key));
  }

  async commitAudit(commit: AuditCommit): Promise<void> {
    let lines = this.#keyLine(commit.signingKey);
    const { records, json, texts } = commit;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.writer !== this.writer)
        throw new Error(`audit record of writer ${String(r.writer)} given to ${this.writer}`);
      let text = texts?.[i];
      if (text === undefined) {
        const { hash: _h, identity, data, ...rest } = r;
        const j = json?.[i];
        text = encodedAuditRecordText(
          rest,
          j ? (j.identity ?? undefined) : canonicalize(identity),
          j ? (j.data ?? undefined) : canonicalize(data),
        );
      }
      lines += hashedLine("a", r.hash, text);
    }
    const cp = commit.checkpoint;
    if (cp) lines += this.#checkpointLine(cp);
    if (lines === "") return;
    await this.#log.append(lines);
    if (commit.signingKey) this.#keysWritten.add(commit.signingKey.key_id);
    const last = records.at(-1);
    if (last) this.#lastAudit = last;
    if (cp) this.#lastCheckpoint = cp;
  }

  async writeRecording(w: RecordingWrite): Promise<void> {
    let lines = this.#keyLine(w.signingKey);
    for (const s of w.sessions ?? []) lines += jsonLine("s", canonicalJson(sessionHeaderFields(s)));
    for (const e of w.events ?? []) lines += eventLine(e, canonicalize(e.data));
    for (const e of w.encodedEvents ?? []) lines += encodedEventLine(e);
    for (const z of w.seals ?? []) lines += jsonLine("z", canonicalJson(sealRecord(z)));
    if (lines === "") return;
    await this.#log.append(lines);
    if (w.signingKey) this.#keysWritten.add(w.signingKey.key_id);
  }

  createSession(header: SessionHeader): Promise<void> {
    return this.writeRecording({ sessions: [header] });
  }

  sealSession(s: SessionSeal): Promise<void> {
    return this.writeRecording({ seals: [s] });
  }

  appendRecordingEvents(events: RecordingEvent[]): Promise<void> {
    return this.writeRecording({ events });
  }

  async insertCheckpoint(cp: Checkpoint): Promise<void> {
    await this.#log.append(this.#checkpointLine(cp));
    this.#lastCheckpoint = cp;
  }

  /** Only a signed note of this writer's chain goes into its log. */
  #checkpointLine(cp: Checkpoint): string {
    if (cp.note === undefined || cp.writer !== this.writer) throw new Error("checkpoint without this writer's note");
    return checkpointLine(cp.note);
  }

  async putSigningKey(key: SigningKeyRecord): Promise<void> {
    const line = this.#keyLine(key);
    if (line !== "") await this.#log.append(line);
    this.#keysWritten.add(key.key_id);
  }

  // ---- this writer's heads come from its own log

  lastAudit(): Promise<AuditRecord | undefined> {
    return Promise.resolve(this.#lastAudit);
  }

  lastCheckpoint(): Promise<Checkpoint | undefined> {
    return Promise.resolve(this.#lastCheckpoint);
  }

  // ---- reads: the index, once it holds everything durable

  async readAudit(options?: PageOptions): Promise<AuditRecord[]> {
    await this.catchUp();
    return this.#index.readAudit(options);
  }

  async *iterateAudit(options?: PageOptions & { pageSize?: number }): AsyncIterable<AuditRecord> {
    await this.catchUp();
    yield* this.#index.iterateAudit(options);
  }

  async tailAudit(n: number): Promise<AuditRecord[]> {
    await this.catchUp();
    return this.#index.tailAudit(n);
  }

  async countAudit(): Promise<number> {
    await this.catchUp();
    return this.#index.countAudit();
  }

  async listCheckpoints(options?: PageOptions): Promise<Checkpoint[]> {
    await this.catchUp();
    return this.#index.listCheckpoints(options);
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    await this.catchUp();
    return this.#index.listSigningKeys();
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    await this.catchUp();
    return this.#index.getSession(sessionId);
  }

  async listSessions(options?: SessionListOptions): Promise<SessionRecord[]> {
    await this.catchUp();
    return this.#index.listSessions(options);
  }

  async readRecordingEvents(sessionId: string, options?: PageOptions): Promise<RecordingEvent[]> {
    await this.catchUp();
    return this.#index.readRecordingEvents(sessionId, options);
  }

  // ---- approvals are state, not evidence: the database only

  insertApproval(record: ApprovalRecord): Promise<void> {
    return this.#index.insertApproval(record);
  }

  getApproval(id: string): Promise<ApprovalRecord | undefined> {
    return this.#index.getApproval(id);
  }

  listApprovals(query?: ApprovalQuery): Promise<ApprovalRecord[]> {
    return this.#index.listApprovals(query);
  }

  updateApproval(record: ApprovalRecord): Promise<boolean> {
    return this.#index.updateApproval(record);
  }

  // ---- the index

  /**
   * Indexes everything that is durable now (and what other writers' segments hold) before resolving. Readers
   * call it first, so what they read includes the log's newest durable records.
   */
  async catchUp(): Promise<void> {
    const target = this.#log.durable;
    while (this.#indexRun !== undefined) await this.#indexRun.catch(() => undefined);
    if (this.#indexedTo.segment === target.segment && this.#indexedTo.offset >= target.offset) {
      // nothing of ours is new; other writers (processes) may have appended
      if (!this.#hasOtherWriters()) return;
    }
    await this.#runIndex();
  }

  #hasOtherWriters(): boolean {
    return listWriters(this.#dataDir).some((w) => w !== this.writer);
  }

  #scheduleIndex(): void {
    if (this.#indexTimer !== undefined || this.#closed) return;
    this.#indexTimer = setTimeout(() => {
      this.#indexTimer = undefined;
      if (this.#indexRun === undefined) void this.#runIndex().catch(() => undefined);
      else this.#scheduleIndex();
    }, this.#indexEveryMs);
    this.#indexTimer.unref();
  }

  #runIndex(): Promise<void> {
    const target = this.#log.durable;
    const run = this.#client
      .indexLog({ dataDir: this.#dataDir, limits: { [this.writer]: target } })
      .then(() => {
        this.#indexedTo = target;
      })
      .finally(() => {
        if (this.#indexRun === run) this.#indexRun = undefined;
      });
    this.#indexRun = run;
    return run;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#indexTimer !== undefined) clearTimeout(this.#indexTimer);
    let failed: { err: unknown } | undefined;
    await this.#log.close().catch((err: unknown) => void (failed ??= { err }));
    // the index holds the whole log when a clean stop leaves it
    while (this.#indexRun !== undefined) await this.#indexRun.catch(() => undefined);
    await this.#runIndex().catch((err: unknown) => void (failed ??= { err }));
    await this.#index.close().catch((err: unknown) => void (failed ??= { err }));
    if (failed) throw failed.err;
  }
}

function eventLine(e: RecordingEvent, dataJson: string | undefined): string {
  const { hash, data: _d, ...rest } = e;
  return hashedLine("r", hash, encodedRecordingEventText(rest, dataJson));
}

function encodedEventLine(e: EncodedRecordingEvent): string {
  if (e.text !== undefined) return hashedLine("r", e.hash, e.text);
  const { hash, data_json, text: _t, ...rest } = e;
  return hashedLine("r", hash, encodedRecordingEventText(rest, data_json ?? undefined));
}
