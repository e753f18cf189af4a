import type { AuditRecord } from "../evidence/audit-event.js";
import type { Checkpoint, RecordingEvent, SessionHeader, SessionRecord, SessionSeal } from "../evidence/records.js";
import type { ApprovalStore } from "../approvals/types.js";
import type { SigningKeyRecord } from "../evidence/signing.js";

/**
 * The JSON columns of an audit record as the log already encoded them for hashing (canonical JSON; null for
 * absent). Stored verbatim, so a commit does not stringify each record again.
 */
export interface AuditJsonText {
  identity: string | null;
  data: string | null;
}

/** A recording event whose data is already canonical JSON text (null: no data), stored verbatim. */
export type EncodedRecordingEvent = Omit<RecordingEvent, "data"> & {
  data_json: string | null;
  /** The canonical text that `hash` is the SHA-256 of, when the producer kept it (written as is to the log). */
  text?: string;
};

/** Everything written by one audit commit, in one transaction: the records and what vouches for them. */
export interface AuditCommit {
  records: AuditRecord[];
  /** When given, index-aligned with `records`: their JSON columns' text. */
  json?: readonly AuditJsonText[];
  /** When given, index-aligned with `records`: the canonical text each hash was computed over. */
  texts?: readonly string[];
  checkpoint?: Checkpoint;
  /** Stored (if new) in the same transaction, so no checkpoint ever names a key the store lacks. */
  signingKey?: SigningKeyRecord;
}

/** Everything written by one recorder flush, in one transaction. */
export interface RecordingWrite {
  sessions?: SessionHeader[];
  events?: RecordingEvent[];
  /** Events whose data the recorder already encoded (written after `events`). */
  encodedEvents?: EncodedRecordingEvent[];
  seals?: SessionSeal[];
  signingKey?: SigningKeyRecord;
}

export interface PageOptions {
  /**
   * Start at this seq (inclusive). Audit reads without `writer` page over every chain in the index's order
   * (the legacy chain first, then records in the order they were indexed), where this is a position in it.
   */
  fromSeq?: number;
  /** Audit reads: only this writer's chain, by its seq. */
  writer?: string;
  /** Audit reads: only the legacy chain (the tables written before the evidence log), by its seq. */
  legacy?: boolean;
  limit?: number;
}

export interface SessionListOptions {
  /** Sessions whose id sorts after this one (paging). */
  afterId?: string;
  limit?: number;
  sealed?: boolean;
  /** Only sessions recorded by this evidence log writer, or in the legacy tables (no writer). */
  writer?: string;
  /** Only sessions in the legacy tables (recorded before the evidence log). */
  legacy?: boolean;
}

/**
 * The persistence that evidence needs. Implementations: SQLite (embedded, this package) and PostgreSQL
 * (shared, multi-replica; later). Each method that writes is one transaction and resolves only once that
 * transaction is durably committed.
 */
export interface Store extends ApprovalStore {
  readonly kind: "sqlite" | "postgres";
  readonly location: string;
  /**
   * The writer this store appends as, when it writes an evidence log of per-writer chains (SegmentStore): the
   * audit log names it in every record. Absent: the store keeps the single legacy chain.
   */
  readonly writer?: string;

  commitAudit(commit: AuditCommit): Promise<void>;
  /** Records in seq order from `fromSeq` (default: the first retained one). */
  readAudit(options?: PageOptions): Promise<AuditRecord[]>;
  iterateAudit(options?: PageOptions & { pageSize?: number }): AsyncIterable<AuditRecord>;
  lastAudit(): Promise<AuditRecord | undefined>;
  /** The newest `n` records, oldest first. */
  tailAudit(n: number): Promise<AuditRecord[]>;
  countAudit(): Promise<number>;

  insertCheckpoint(checkpoint: Checkpoint): Promise<void>;
  /** Checkpoints in seq order from `fromSeq`. */
  listCheckpoints(options?: PageOptions): Promise<Checkpoint[]>;
  lastCheckpoint(): Promise<Checkpoint | undefined>;

  putSigningKey(key: SigningKeyRecord): Promise<void>;
  listSigningKeys(): Promise<SigningKeyRecord[]>;

  writeRecording(write: RecordingWrite): Promise<void>;
  createSession(header: SessionHeader): Promise<void>;
  /** Ends a session by storing its seal (count, last hash, end time, reason, signature). */
  sealSession(seal: SessionSeal): Promise<void>;
  getSession(sessionId: string): Promise<SessionRecord | undefined>;
  listSessions(options?: SessionListOptions): Promise<SessionRecord[]>;
  appendRecordingEvents(events: RecordingEvent[]): Promise<void>;
  /** A session's events in seq order from `fromSeq` (default 1). */
  readRecordingEvents(sessionId: string, options?: PageOptions): Promise<RecordingEvent[]>;

  close(): Promise<void>;
}

/** A row could not be decoded (for example its JSON was edited into something invalid). */
export class CorruptRecordError extends Error {
  constructor(
    readonly table: string,
    readonly key: string,
    message: string,
  ) {
    super(`${table} ${key}: ${message}`);
    this.name = "CorruptRecordError";
  }
}
