/**
 * Fills the SQLite index from the evidence log's segment files. Runs inside the store's worker thread, on its
 * connection, so the gateway's event loop only says "index up to here". Each writer's progress is a watermark
 * (segment, offset) kept in the same transaction as the rows it covers, so a crash between two runs neither
 * skips nor doubles a line. The index is not trusted for evidence: `gatehouse audit verify` reads the segments
 * and checks that the index agrees with them.
 */
import type Database from "better-sqlite3";
import { join } from "node:path";
import { parseLine, type ParsedLine } from "../evidence/segments/format.js";
import { parseCheckpointNote } from "../evidence/segments/note.js";
import { evidenceDir, listSegments, listWriters, readSegmentLines, segmentPath } from "../evidence/segments/reader.js";
import type { LogPosition } from "../evidence/segments/writer.js";

export interface IndexRequest {
  dataDir: string;
  /**
   * For the writers this process appends as: index no further than this (what is durable). Other writers'
   * segments are indexed up to their last complete line.
   */
  limits: Record<string, LogPosition>;
}

export interface IndexOutcome {
  lines: number;
  /** Lines that could not be indexed (verify names them). */
  skipped: number;
}

interface WatermarkRow {
  writer: string;
  segment: number | bigint;
  offset: number | bigint;
}

const BYTES_PER_STEP = 8 * 1024 * 1024;

type Statements = Record<"audit" | "key" | "session" | "event" | "seal" | "checkpoint" | "mark", Database.Statement>;

const statementCache = new WeakMap<Database.Database, Statements>();

function statements(db: Database.Database): Statements {
  let s = statementCache.get(db);
  if (s) return s;
  s = {
    audit: db.prepare(
      `INSERT OR IGNORE INTO log_audit_events (writer, seq, time, type, connection, session_id, decision, text, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    key: db.prepare(
      "INSERT OR IGNORE INTO signing_keys (key_id, algorithm, public_key, created_at) VALUES (?, ?, ?, ?)",
    ),
    session: db.prepare(
      `INSERT OR IGNORE INTO sessions (session_id, connection, protocol, identity, started_at, writer)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    event: db.prepare(
      `INSERT OR IGNORE INTO recording_events (session_id, seq, t, kind, prev_hash, hash, text)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    seal: db.prepare(
      `UPDATE sessions SET ended_at = ?, end_reason = ?, event_count = ?, last_hash = ?, seal_signature = ?,
       seal_key_id = ? WHERE session_id = ? AND seal_signature IS NULL`,
    ),
    checkpoint: db.prepare(
      `INSERT OR IGNORE INTO log_checkpoints (writer, seq, hash, time, signature, key_id, note)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    mark: db.prepare(
      `INSERT INTO log_watermarks (writer, segment, "offset") VALUES (?, ?, ?)
       ON CONFLICT (writer) DO UPDATE SET segment = excluded.segment, "offset" = excluded."offset"`,
    ),
  };
  statementCache.set(db, s);
  return s;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

function insert(s: Statements, writer: string, p: ParsedLine): void {
  switch (p.tag) {
    case "a": {
      const r = p.value;
      if (r["writer"] !== writer) throw new Error("audit record of another writer");
      s.audit.run(
        writer,
        r["seq"],
        r["time"],
        r["type"],
        str(r["connection"]),
        str(r["session_id"]),
        str(r["decision"]),
        p.text,
        p.hash,
      );
      return;
    }
    case "r": {
      const e = p.value;
      s.event.run(e["session_id"], e["seq"], e["t"], e["kind"], e["prev_hash"], p.hash, p.text);
      return;
    }
    case "s": {
      const h = p.value;
      s.session.run(h["session_id"], h["connection"], h["protocol"], json(h["identity"]), h["started_at"], writer);
      return;
    }
    case "z": {
      const z = p.value;
      s.seal.run(z["ended_at"], z["reason"], z["count"], z["last_hash"], z["signature"], z["key_id"], z["session_id"]);
      return;
    }
    case "k": {
      const k = p.value;
      s.key.run(k["key_id"], k["algorithm"], k["public_key"], k["created_at"]);
      return;
    }
    case "c": {
      const cp = parseCheckpointNote(p.note);
      if (cp.writer !== writer) throw new Error("checkpoint of another writer");
      s.checkpoint.run(writer, cp.seq, cp.hash, cp.time, cp.signature, cp.key_id, p.note);
      return;
    }
    case "h":
      return;
  }
}

const HASH_END = 66;

/**
 * A recording event line without parsing its data (SSH output can be large): canonical order puts `data` first,
 * so the event's own members are the JSON after the last `"kind":` key (a quote inside a string is escaped, so
 * that text only occurs as a key, and keys nested in data come before it). False for any other line.
 */
function insertEvent(s: Statements, line: string): boolean {
  if (!line.startsWith("r ") || line[HASH_END] !== " ") return false;
  const text = line.slice(HASH_END + 1);
  const at = text.lastIndexOf('"kind":');
  if (at < 0) return false;
  const e = JSON.parse(`{${text.slice(at)}`) as Record<string, unknown>;
  s.event.run(e["session_id"], e["seq"], e["t"], e["kind"], e["prev_hash"], line.slice(2, HASH_END), text);
  return true;
}

/** Indexes what the segments hold beyond each writer's watermark. One transaction per step of at most 8 MiB. */
export function indexEvidenceLog(db: Database.Database, req: IndexRequest): IndexOutcome {
  const s = statements(db);
  const rows = db.prepare(`SELECT writer, segment, "offset" FROM log_watermarks`).all() as WatermarkRow[];
  const marks = new Map(rows.map((r) => [r.writer, { segment: Number(r.segment), offset: Number(r.offset) }]));
  const outcome: IndexOutcome = { lines: 0, skipped: 0 };
  for (const writer of listWriters(req.dataDir)) {
    const dir = join(evidenceDir(req.dataDir), writer);
    const limit = req.limits[writer];
    const segments = listSegments(dir);
    let mark = marks.get(writer) ?? { segment: segments[0] ?? 1, offset: 0 };
    for (const seg of segments) {
      if (seg < mark.segment) continue;
      if (limit && seg > limit.segment) break;
      if (seg > mark.segment) mark = { segment: seg, offset: 0 };
      const stop = limit && seg === limit.segment ? limit.offset : undefined;
      for (;;) {
        const chunk = readSegmentLines(segmentPath(dir, seg), mark.offset, stop, BYTES_PER_STEP);
        if (chunk.lines.length === 0) break;
        db.transaction(() => {
          for (const l of chunk.lines) {
            try {
              if (!insertEvent(s, l.line)) insert(s, writer, parseLine(l.line));
              outcome.lines++;
            } catch {
              outcome.skipped++;
            }
          }
          s.mark.run(writer, seg, chunk.end);
        }).immediate();
        mark = { segment: seg, offset: chunk.end };
      }
      // a later segment exists only once this one is finished; without one, stop here
    }
  }
  return outcome;
}
