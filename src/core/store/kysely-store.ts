import type { CompiledQuery, Kysely, Selectable } from "kysely";
import type { ApprovalQuery, ApprovalRecord } from "../approvals/types.js";
import type { AuditIdentity, AuditRecord } from "../evidence/audit-event.js";
import type { Checkpoint, RecordingEvent, SessionHeader, SessionRecord, SessionSeal } from "../evidence/records.js";
import type { SigningKeyRecord } from "../evidence/signing.js";
import type {
  ApprovalsTable,
  AuditEventsTable,
  Database,
  LogAuditEventsTable,
  RecordingEventsTable,
  SessionsTable,
} from "./schema.js";
import {
  CorruptRecordError,
  type AuditCommit,
  type AuditJsonText,
  type PageOptions,
  type RecordingWrite,
  type SessionListOptions,
  type Store,
} from "./types.js";

const DEFAULT_PAGE = 1000;

/** A statement ready to run: SQL text in the store's dialect and positional parameters. */
export interface Statement {
  sql: string;
  parameters: readonly unknown[];
}

/** Runs statements as one durable transaction. */
export type BatchRunner = (statements: readonly Statement[]) => Promise<void>;

function parseJson(table: string, key: string, column: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CorruptRecordError(table, key, `column ${column} is not valid JSON`);
  }
}

// JSON columns keep JSON text even for null, so "present but null" and "absent" (SQL NULL) stay distinct
const jsonOrNull = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

function auditRow(r: AuditRecord, json?: AuditJsonText): AuditEventsTable {
  return {
    seq: r.seq,
    time: r.time,
    type: r.type,
    identity: json ? json.identity : jsonOrNull(r.identity),
    connection: r.connection ?? null,
    session_id: r.session_id ?? null,
    decision: r.decision ?? null,
    rule: r.rule ?? null,
    data: json ? json.data : jsonOrNull(r.data),
    prev_hash: r.prev_hash,
    hash: r.hash,
  };
}

function auditRecord(row: Selectable<AuditEventsTable>): AuditRecord {
  const seq = Number(row.seq);
  const key = `seq ${seq}`;
  const rec: AuditRecord = { seq, time: row.time, type: row.type, prev_hash: row.prev_hash, hash: row.hash };
  if (row.identity !== null) rec.identity = parseJson("audit_events", key, "identity", row.identity) as AuditIdentity;
  if (row.connection !== null) rec.connection = row.connection;
  if (row.session_id !== null) rec.session_id = row.session_id;
  if (row.decision !== null) rec.decision = row.decision as AuditRecord["decision"];
  if (row.rule !== null) rec.rule = row.rule;
  if (row.data !== null) rec.data = parseJson("audit_events", key, "data", row.data) as Record<string, unknown>;
  return forHumans(rec);
}

/** Field order for humans reading `audit tail --json`; hashing does not depend on it. */
function forHumans(rec: AuditRecord): AuditRecord {
  const { writer, seq, time, type, prev_hash, hash, ...rest } = rec;
  return writer === undefined
    ? { seq, time, type, ...rest, prev_hash, hash }
    : { writer, seq, time, type, ...rest, prev_hash, hash };
}

/** An indexed evidence log record: its hashed text parsed whole. */
function logAuditRecord(row: Omit<LogAuditEventsTable, "pos">): AuditRecord {
  const value = parseJson("log_audit_events", `${row.writer} seq ${Number(row.seq)}`, "text", row.text);
  if (value === null || typeof value !== "object") {
    throw new CorruptRecordError("log_audit_events", `${row.writer} seq ${Number(row.seq)}`, "text is not a record");
  }
  const rec = value as AuditRecord;
  // the query columns are copies of the text's members: one that differs was edited
  for (const k of ["writer", "seq", "time", "type", "connection", "session_id", "decision"] as const) {
    const column = k === "seq" ? Number(row[k]) : (row[k] ?? undefined);
    if (column !== rec[k]) {
      throw new CorruptRecordError("log_audit_events", `${row.writer} seq ${Number(row.seq)}`, `column ${k} differs`);
    }
  }
  return forHumans({ ...rec, hash: row.hash });
}

function checkpoint(row: { seq: number; hash: string; time: string; signature: string; key_id: string }): Checkpoint {
  return { seq: Number(row.seq), hash: row.hash, time: row.time, signature: row.signature, key_id: row.key_id };
}

function sessionRecord(row: Selectable<SessionsTable>): SessionRecord {
  const rec: SessionRecord = {
    session_id: row.session_id,
    connection: row.connection,
    protocol: row.protocol,
    started_at: row.started_at,
  };
  if (row.identity !== null) {
    rec.identity = parseJson("sessions", row.session_id, "identity", row.identity) as AuditIdentity;
  }
  if (row.seal_signature !== null) {
    rec.seal = {
      session_id: row.session_id,
      count: Number(row.event_count ?? -1),
      last_hash: row.last_hash ?? "",
      ended_at: row.ended_at ?? "",
      reason: row.end_reason ?? "",
      signature: row.seal_signature,
      key_id: row.seal_key_id ?? "",
    };
  }
  return rec;
}

function recordingEvent(row: Selectable<RecordingEventsTable>): RecordingEvent {
  const seq = Number(row.seq);
  if (row.text !== null && row.text !== undefined) {
    // indexed from the evidence log: the text as hashed holds every member
    const value = parseJson("recording_events", `${row.session_id}#${seq}`, "text", row.text) as RecordingEvent;
    const { prev_hash, ...rest } = value;
    return { ...rest, prev_hash, hash: row.hash };
  }
  const ev: RecordingEvent = {
    session_id: row.session_id,
    seq,
    t: Number(row.t),
    kind: row.kind,
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
  if (row.data !== null) ev.data = parseJson("recording_events", `${row.session_id}#${seq}`, "data", row.data);
  const { prev_hash, hash, ...rest } = ev;
  return { ...rest, prev_hash, hash };
}

function approvalRow(r: ApprovalRecord): ApprovalsTable {
  return {
    id: r.id,
    kind: r.kind,
    status: r.status,
    connection: r.connection,
    requester_subject: r.requester.subject,
    exact_key: r.exact_key ?? null,
    created_at: r.created_at,
    version: r.version,
    body: JSON.stringify(r),
  };
}

function approvalRecord(row: Selectable<ApprovalsTable>): ApprovalRecord {
  const body = parseJson("approvals", row.id, "body", row.body) as ApprovalRecord;
  // the indexed columns are what updates compare against; they win over the JSON copy
  return { ...body, status: row.status as ApprovalRecord["status"], version: Number(row.version) };
}

/**
 * The Store on kysely. Only portable query-builder SQL is used here, so the PostgreSQL store can reuse this
 * class with a pg dialect and its own BatchRunner (a transaction).
 */
export class KyselyStore implements Store {
  constructor(
    readonly kind: "sqlite" | "postgres",
    readonly location: string,
    private readonly db: Kysely<Database>,
    private readonly runBatch: BatchRunner,
  ) {}

  #insertSql = new Map<string, { sql: string; columns: string[] }>();
  #hasLog: Promise<boolean> | undefined;

  /**
   * Whether the evidence log's index tables exist: a data directory from before migration 0005, opened read-only
   * (verify, tail), has none, and reads it as holding only the legacy chain.
   */
  #logTables(): Promise<boolean> {
    this.#hasLog ??= this.db.introspection
      .getTables()
      .then((tables) => tables.some((t) => t.name === "log_audit_events"));
    return this.#hasLog;
  }

  /**
   * Row inserts on the hot path: the SQL is compiled by kysely once per table (so it stays in the dialect),
   * then reused with each row's values in column order. Building a query per row cost ~16 us.
   */
  #insertRow<T extends "audit_events" | "recording_events">(table: T, row: Database[T]): Statement {
    let tpl = this.#insertSql.get(table);
    if (tpl === undefined) {
      const columns = Object.keys(row);
      const sql = this.db
        .insertInto(table)
        .values(row as never)
        .compile().sql;
      tpl = { sql, columns };
      this.#insertSql.set(table, tpl);
    }
    const values = row as unknown as Record<string, unknown>;
    return { sql: tpl.sql, parameters: tpl.columns.map((c) => values[c]) };
  }

  #keyInsert(key: SigningKeyRecord): CompiledQuery {
    return this.db
      .insertInto("signing_keys")
      .values(key)
      .onConflict((oc) => oc.column("key_id").doNothing())
      .compile();
  }

  async commitAudit(commit: AuditCommit): Promise<void> {
    const qs: Statement[] = [];
    if (commit.signingKey) qs.push(this.#keyInsert(commit.signingKey));
    // one statement per row: the cached prepared statement is cheaper than varying multi-row shapes
    commit.records.forEach((r, i) => qs.push(this.#insertRow("audit_events", auditRow(r, commit.json?.[i]))));
    if (commit.checkpoint) qs.push(this.db.insertInto("audit_checkpoints").values(commit.checkpoint).compile());
    if (qs.length > 0) await this.runBatch(qs);
  }

  /**
   * Audit records. With `writer`: that writer's chain by seq. Without: every chain in the index's order, the
   * legacy table first (position = its seq), then the evidence log's records in the order they were indexed
   * (position = the legacy table's last seq + pos); `fromSeq` is a position then.
   */
  async readAudit(options: PageOptions = {}): Promise<AuditRecord[]> {
    const limit = options.limit ?? DEFAULT_PAGE;
    const from = options.fromSeq ?? 0;
    if (options.writer !== undefined) {
      if (!(await this.#logTables())) return [];
      const rows = await this.db
        .selectFrom("log_audit_events")
        .selectAll()
        .where("writer", "=", options.writer)
        .where("seq", ">=", from)
        .orderBy("seq")
        .limit(limit)
        .execute();
      return rows.map(logAuditRecord);
    }
    const legacy = await this.db
      .selectFrom("audit_events")
      .selectAll()
      .where("seq", ">=", from)
      .orderBy("seq")
      .limit(limit)
      .execute();
    const out = legacy.map(auditRecord);
    if (out.length < limit && options.legacy !== true && (await this.#logTables())) {
      const base = await this.#legacyLastSeq();
      const rows = await this.db
        .selectFrom("log_audit_events")
        .selectAll()
        .where("pos", ">=", Math.max(0, from - base))
        .orderBy("pos")
        .limit(limit - out.length)
        .execute();
      for (const r of rows) out.push(logAuditRecord(r));
    }
    return out;
  }

  async #legacyLastSeq(): Promise<number> {
    const row = await this.db
      .selectFrom("audit_events")
      .select((eb) => eb.fn.max("seq").as("m"))
      .executeTakeFirst();
    return Number(row?.m ?? 0);
  }

  async *iterateAudit(options: PageOptions & { pageSize?: number } = {}): AsyncIterable<AuditRecord> {
    const pageSize = options.pageSize ?? DEFAULT_PAGE;
    let left = options.limit ?? Infinity;
    if (options.writer !== undefined) {
      let from = options.fromSeq ?? 0;
      while (left > 0) {
        const page = await this.readAudit({ writer: options.writer, fromSeq: from, limit: Math.min(pageSize, left) });
        for (const r of page) yield r;
        if (page.length < pageSize) return;
        left -= page.length;
        from = (page.at(-1)?.seq ?? from) + 1;
      }
      return;
    }
    // positions: the legacy chain's seqs, then the index's pos after them
    let from = options.fromSeq ?? 0;
    const base = await this.#legacyLastSeq();
    while (left > 0) {
      const page = await this.readAudit({ fromSeq: from, limit: Math.min(pageSize, left) });
      for (const r of page) yield r;
      if (page.length < pageSize) return;
      left -= page.length;
      from = await this.#positionAfter(page.at(-1)!, base);
    }
  }

  async #positionAfter(r: AuditRecord, base: number): Promise<number> {
    if (r.writer === undefined) return r.seq + 1;
    const row = await this.db
      .selectFrom("log_audit_events")
      .select("pos")
      .where("writer", "=", r.writer)
      .where("seq", "=", r.seq)
      .executeTakeFirst();
    return base + Number(row?.pos ?? 0) + 1;
  }

  async lastAudit(): Promise<AuditRecord | undefined> {
    return (await this.tailAudit(1))[0];
  }

  async tailAudit(n: number): Promise<AuditRecord[]> {
    const rows = (await this.#logTables())
      ? await this.db.selectFrom("log_audit_events").selectAll().orderBy("pos", "desc").limit(n).execute()
      : [];
    const out = rows.map(logAuditRecord);
    if (out.length < n) {
      const legacy = await this.db
        .selectFrom("audit_events")
        .selectAll()
        .orderBy("seq", "desc")
        .limit(n - out.length)
        .execute();
      for (const r of legacy) out.push(auditRecord(r));
    }
    return out.reverse();
  }

  async countAudit(): Promise<number> {
    let n = 0;
    const tables: ("audit_events" | "log_audit_events")[] = (await this.#logTables())
      ? ["audit_events", "log_audit_events"]
      : ["audit_events"];
    for (const table of tables) {
      const row = await this.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirst();
      n += Number(row?.n ?? 0);
    }
    return n;
  }

  async insertCheckpoint(cp: Checkpoint): Promise<void> {
    await this.runBatch([this.db.insertInto("audit_checkpoints").values(cp).compile()]);
  }

  /** Checkpoints in seq order: of `writer`'s chain when given, else of the legacy chain. */
  async listCheckpoints(options: PageOptions = {}): Promise<Checkpoint[]> {
    if (options.writer !== undefined) {
      if (!(await this.#logTables())) return [];
      const rows = await this.db
        .selectFrom("log_checkpoints")
        .selectAll()
        .where("writer", "=", options.writer)
        .where("seq", ">=", options.fromSeq ?? 0)
        .orderBy("seq")
        .limit(options.limit ?? DEFAULT_PAGE)
        .execute();
      return rows.map((r) => ({ ...checkpoint(r), writer: r.writer, note: r.note }));
    }
    const rows = await this.db
      .selectFrom("audit_checkpoints")
      .selectAll()
      .where("seq", ">=", options.fromSeq ?? 0)
      .orderBy("seq")
      .limit(options.limit ?? DEFAULT_PAGE)
      .execute();
    return rows.map(checkpoint);
  }

  /** The legacy chain's last checkpoint (a SegmentStore answers for its own writer). */
  async lastCheckpoint(): Promise<Checkpoint | undefined> {
    const row = await this.db
      .selectFrom("audit_checkpoints")
      .selectAll()
      .orderBy("seq", "desc")
      .limit(1)
      .executeTakeFirst();
    return row && checkpoint(row);
  }

  async putSigningKey(key: SigningKeyRecord): Promise<void> {
    await this.runBatch([this.#keyInsert(key)]);
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    const rows = await this.db.selectFrom("signing_keys").selectAll().orderBy("created_at").execute();
    return rows.map((r) => ({ ...r, algorithm: r.algorithm as "ed25519" }));
  }

  async writeRecording(w: RecordingWrite): Promise<void> {
    const qs: Statement[] = [];
    if (w.signingKey) qs.push(this.#keyInsert(w.signingKey));
    for (const s of w.sessions ?? []) {
      qs.push(
        this.db
          .insertInto("sessions")
          .values({
            session_id: s.session_id,
            connection: s.connection,
            protocol: s.protocol,
            identity: jsonOrNull(s.identity),
            started_at: s.started_at,
            ended_at: null,
            end_reason: null,
            event_count: null,
            last_hash: null,
            seal_signature: null,
            seal_key_id: null,
          })
          .compile(),
      );
    }
    for (const e of w.events ?? []) {
      qs.push(
        this.#insertRow("recording_events", {
          session_id: e.session_id,
          seq: e.seq,
          t: e.t,
          kind: e.kind,
          data: jsonOrNull(e.data),
          prev_hash: e.prev_hash,
          hash: e.hash,
        }),
      );
    }
    for (const e of w.encodedEvents ?? []) {
      const { data_json, text: _text, ...row } = e;
      qs.push(this.#insertRow("recording_events", { ...row, data: data_json }));
    }
    for (const s of w.seals ?? []) qs.push(this.#sealUpdate(s));
    if (qs.length > 0) await this.runBatch(qs);
  }

  #sealUpdate(s: SessionSeal): CompiledQuery {
    return (
      this.db
        .updateTable("sessions")
        .set({
          ended_at: s.ended_at,
          end_reason: s.reason,
          event_count: s.count,
          last_hash: s.last_hash,
          seal_signature: s.signature,
          seal_key_id: s.key_id,
        })
        .where("session_id", "=", s.session_id)
        // a seal is written once; a second seal of the same session changes nothing
        .where("seal_signature", "is", null)
        .compile()
    );
  }

  createSession(header: SessionHeader): Promise<void> {
    return this.writeRecording({ sessions: [header] });
  }

  sealSession(seal: SessionSeal): Promise<void> {
    return this.writeRecording({ seals: [seal] });
  }

  appendRecordingEvents(events: RecordingEvent[]): Promise<void> {
    return this.writeRecording({ events });
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const row = await this.db.selectFrom("sessions").selectAll().where("session_id", "=", sessionId).executeTakeFirst();
    return row && sessionRecord(row);
  }

  async listSessions(options: SessionListOptions = {}): Promise<SessionRecord[]> {
    let q = this.db.selectFrom("sessions").selectAll();
    if (options.afterId !== undefined) q = q.where("session_id", ">", options.afterId);
    if (options.sealed === true) q = q.where("seal_signature", "is not", null);
    if (options.sealed === false) q = q.where("seal_signature", "is", null);
    const writer = options.writer;
    if (writer !== undefined) q = q.where((eb) => eb.or([eb("writer", "=", writer), eb("writer", "is", null)]));
    if (options.legacy === true && (await this.#logTables())) q = q.where("writer", "is", null);
    const rows = await q
      .orderBy("session_id")
      .limit(options.limit ?? DEFAULT_PAGE)
      .execute();
    return rows.map(sessionRecord);
  }

  async readRecordingEvents(sessionId: string, options: PageOptions = {}): Promise<RecordingEvent[]> {
    const rows = await this.db
      .selectFrom("recording_events")
      .selectAll()
      .where("session_id", "=", sessionId)
      .where("seq", ">=", options.fromSeq ?? 1)
      .orderBy("seq")
      .limit(options.limit ?? DEFAULT_PAGE)
      .execute();
    return rows.map(recordingEvent);
  }

  async insertApproval(record: ApprovalRecord): Promise<void> {
    await this.runBatch([this.db.insertInto("approvals").values(approvalRow(record)).compile()]);
  }

  async getApproval(id: string): Promise<ApprovalRecord | undefined> {
    const row = await this.db.selectFrom("approvals").selectAll().where("id", "=", id).executeTakeFirst();
    return row && approvalRecord(row);
  }

  async listApprovals(query: ApprovalQuery = {}): Promise<ApprovalRecord[]> {
    let q = this.db.selectFrom("approvals").selectAll();
    if (query.statuses) q = q.where("status", "in", query.statuses.length > 0 ? [...query.statuses] : [""]);
    if (query.kind !== undefined) q = q.where("kind", "=", query.kind);
    if (query.exactKey !== undefined) q = q.where("exact_key", "=", query.exactKey);
    if (query.connection !== undefined) q = q.where("connection", "=", query.connection);
    if (query.requesterSubject !== undefined) q = q.where("requester_subject", "=", query.requesterSubject);
    const rows = await q
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .limit(query.limit ?? DEFAULT_PAGE)
      .execute();
    return rows.map(approvalRecord);
  }

  async updateApproval(record: ApprovalRecord): Promise<boolean> {
    const next = { ...record, version: record.version + 1 };
    const { id: _id, ...row } = approvalRow(next);
    const result = await this.db
      .updateTable("approvals")
      .set(row)
      .where("id", "=", record.id)
      .where("version", "=", record.version)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
