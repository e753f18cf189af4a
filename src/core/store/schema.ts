/**
 * Table shapes for kysely. Every audit field has exactly one column (JSON only for the free-form parts), so
 * the record read back is the record that was hashed and any edit of any column changes the recomputed hash.
 * seq and t are integers; PostgreSQL may return bigint columns as strings, so readers convert with Number().
 */
export interface AuditEventsTable {
  seq: number;
  time: string;
  type: string;
  identity: string | null;
  connection: string | null;
  session_id: string | null;
  decision: string | null;
  rule: string | null;
  data: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditCheckpointsTable {
  seq: number;
  hash: string;
  time: string;
  signature: string;
  key_id: string;
}

export interface SigningKeysTable {
  key_id: string;
  algorithm: string;
  public_key: string;
  created_at: string;
}

export interface SessionsTable {
  session_id: string;
  connection: string;
  protocol: string;
  identity: string | null;
  started_at: string;
  ended_at: string | null;
  end_reason: string | null;
  event_count: number | null;
  last_hash: string | null;
  seal_signature: string | null;
  seal_key_id: string | null;
  /** The evidence log writer whose segments hold the session (null: the legacy tables). */
  writer?: string | null;
}

export interface RecordingEventsTable {
  session_id: string;
  seq: number;
  t: number;
  kind: string;
  data: string | null;
  prev_hash: string;
  hash: string;
  /** Events indexed from the evidence log: the canonical JSON without `hash`, as hashed (data is NULL then). */
  text?: string | null;
}

/** Approval requests: the whole record as JSON in `body`, plus the columns that queries filter on. */
export interface ApprovalsTable {
  id: string;
  kind: string;
  status: string;
  connection: string;
  requester_subject: string;
  exact_key: string | null;
  created_at: string;
  version: number;
  body: string;
}

/**
 * The index of the evidence log's audit records: one row per record, `pos` in the order indexed. `text` is the
 * record's canonical JSON without `hash`, exactly as hashed; the other columns are copies for queries.
 */
export interface LogAuditEventsTable {
  pos: number;
  writer: string;
  seq: number;
  time: string;
  type: string;
  connection: string | null;
  session_id: string | null;
  decision: string | null;
  text: string;
  hash: string;
}

export interface LogCheckpointsTable extends AuditCheckpointsTable {
  writer: string;
  note: string;
}

export interface LogWatermarksTable {
  writer: string;
  segment: number;
  offset: number;
}

export interface Database {
  audit_events: AuditEventsTable;
  log_audit_events: LogAuditEventsTable;
  log_checkpoints: LogCheckpointsTable;
  log_watermarks: LogWatermarksTable;
  audit_checkpoints: AuditCheckpointsTable;
  signing_keys: SigningKeysTable;
  sessions: SessionsTable;
  recording_events: RecordingEventsTable;
  approvals: ApprovalsTable;
}
