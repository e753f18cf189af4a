/**
 * Encode once: a request's text and data are encoded and hashed once, in its audit record. The session
 * recording's `request` event refers to that record instead of holding a second copy:
 *
 *   data: { audit: { hash, seq, writer }, decision: { outcome, rule?, summary?, reason? } }
 *
 * `hash` and `seq` are the audit record's, `writer` its chain's (absent for the legacy single chain). The gate
 * records such an event only once the record is durable (so a reference never names a record that was not
 * written); a request whose record could not be written keeps its text in the event, as every request event of
 * earlier versions does. Readers (replay) show the record's request members in the event's data
 * (resolveRequestEvents); `gatehouse audit verify` checks that each reference names a record of the same writer
 * and session (referenceProblem). docs/evidence.md, "Session recordings", states the same for auditors.
 */
import type { Store } from "../store/types.js";
import type { AuditRecord } from "./audit-event.js";
import type { RecordingEvent } from "./records.js";

export interface AuditReference {
  hash: string;
  seq: number;
  /** The writer whose chain holds the record; absent for a record of the legacy single chain. */
  writer?: string;
}

/** Audit record types a request event may refer to. */
export const REQUEST_RECORD_TYPES: ReadonlySet<string> = new Set(["request", "request.blocked"]);

/** The reference to put in a request event for `record`. */
export function auditReference(record: Pick<AuditRecord, "hash" | "seq" | "writer">): AuditReference {
  return record.writer === undefined
    ? { hash: record.hash, seq: record.seq }
    : { hash: record.hash, seq: record.seq, writer: record.writer };
}

const HEX_HASH = /^[0-9a-f]{64}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The audit reference of a recording event: undefined when it has none (not a `request` event, or one that
 * carries its request itself), else the reference, or a sentence saying why it is not a well-formed one.
 */
export function referenceIn(ev: { kind: string; data?: unknown }): AuditReference | string | undefined {
  if (ev.kind !== "request" || !isObject(ev.data) || !("audit" in ev.data)) return undefined;
  const ref = ev.data["audit"];
  if (
    !isObject(ref) ||
    typeof ref["hash"] !== "string" ||
    !HEX_HASH.test(ref["hash"]) ||
    typeof ref["seq"] !== "number" ||
    !Number.isSafeInteger(ref["seq"]) ||
    ref["seq"] < 1 ||
    (ref["writer"] !== undefined && typeof ref["writer"] !== "string")
  ) {
    return "its audit reference is malformed";
  }
  return ref as unknown as AuditReference;
}

/** What a reference was resolved to: the record at its writer and seq, if the log holds one. */
export interface ReferencedRecord {
  hash: string;
  type: string;
  session_id?: string | undefined;
}

/**
 * Why `ref`, in a request event of session `sessionId` recorded by `writer` (undefined: the legacy tables), does
 * not resolve to `record` (the record at the reference's seq in that chain, undefined if there is none); undefined
 * when it does.
 */
export function referenceProblem(
  ref: AuditReference,
  sessionId: string,
  writer: string | undefined,
  record: ReferencedRecord | undefined,
): string | undefined {
  const where = `${ref.writer === undefined ? "the legacy chain" : `writer ${ref.writer}`} seq ${ref.seq}`;
  if (ref.writer !== writer) {
    return `its audit reference names ${where}, not the chain of the writer that recorded the session (${writer ?? "legacy"})`;
  }
  if (record === undefined) return `its audit record (${where}) is not in the log`;
  if (record.hash !== ref.hash) return `its audit reference does not resolve: the record at ${where} has another hash`;
  if (record.session_id !== sessionId) {
    return `its audit record (${where}) belongs to ${record.session_id === undefined ? "no session" : `session ${record.session_id}`}`;
  }
  if (!REQUEST_RECORD_TYPES.has(record.type)) return `its audit record (${where}) is a ${record.type} record`;
  return undefined;
}

/** Most records read at once while resolving: references of one page are mostly close together in a chain. */
const SPAN = 256;

/**
 * The events as readers see them: each `request` event whose reference resolves gets the referenced record's
 * `data` members (text, parameters...) in its data, under its own members (`audit`, `decision`). Its `hash` stays
 * the hash of the event as stored. Events whose reference does not resolve are left as stored (verify reports them).
 */
export async function resolveRequestEvents(store: Store, events: RecordingEvent[]): Promise<RecordingEvent[]> {
  const wanted = new Map<string, Set<number>>();
  for (const ev of events) {
    const ref = referenceIn(ev);
    if (ref === undefined || typeof ref === "string") continue;
    const key = ref.writer ?? "";
    let seqs = wanted.get(key);
    if (!seqs) wanted.set(key, (seqs = new Set()));
    seqs.add(ref.seq);
  }
  if (wanted.size === 0) return events;
  const found = new Map<string, AuditRecord>();
  for (const [key, set] of wanted) {
    const seqs = [...set].sort((a, b) => a - b);
    for (let i = 0; i < seqs.length;) {
      const from = seqs[i]!;
      let to = from;
      for (let j = i + 1; j < seqs.length && seqs[j]! - from < SPAN; j++) to = seqs[j]!;
      const rows = await store.readAudit({
        ...(key === "" ? { legacy: true } : { writer: key }),
        fromSeq: from,
        limit: to - from + 1,
      });
      for (const r of rows) found.set(`${key} ${r.seq}`, r);
      while (i < seqs.length && seqs[i]! <= to) i++;
    }
  }
  return events.map((ev) => {
    const ref = referenceIn(ev);
    if (ref === undefined || typeof ref === "string") return ev;
    const record = found.get(`${ref.writer ?? ""} ${ref.seq}`);
    if (record === undefined || referenceProblem(ref, ev.session_id, ref.writer, record) !== undefined) return ev;
    return { ...ev, data: { ...record.data, ...(ev.data as Record<string, unknown>) } };
  });
}
