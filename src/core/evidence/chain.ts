/**
 * What exactly is hashed and signed. Both the writers (audit-log.ts, recorder.ts) and verify.ts use these
 * functions, and docs/evidence.md restates them for independent verifiers.
 */
import type { AuditRecord } from "./audit-event.js";
import { canonicalHash, canonicalJson, sha256Hex } from "./canonical.js";
import type { Checkpoint, RecordingEvent, SealPayload, SessionHeader, SessionSeal } from "./records.js";

/** hash = SHA-256 of the canonical JSON of the record with every field except `hash`. */
export function auditRecordHash(record: Omit<AuditRecord, "hash"> & { hash?: string }): string {
  const { hash: _hash, ...rest } = record;
  return canonicalHash(rest);
}

// The hot records have a fixed set of members, so their canonical JSON is written in key order directly instead
// of sorting keys per record. The lists below must stay sorted by UTF-16 code units; chain.test.ts compares
// each encoder with canonicalJson of the same record.
type Member = readonly [key: string, json: string | undefined];
const value = (v: unknown): string | undefined => (v === undefined ? undefined : canonicalJson(v));

function members(list: readonly Member[]): string {
  let out = "{";
  for (const [key, json] of list) if (json !== undefined) out += `${out.length > 1 ? "," : ""}"${key}":${json}`;
  return `${out}}`;
}

/**
 * The canonical JSON that auditRecordHash hashes, for a record whose `identity` and `data` are given as their
 * canonical JSON text (`canonicalize`): the same text, without encoding those parts a second time.
 */
export function encodedAuditRecordText(
  r: Omit<AuditRecord, "hash" | "identity" | "data">,
  identity: string | undefined,
  data: string | undefined,
): string {
  return members([
    ["connection", value(r.connection)],
    ["data", data],
    ["decision", value(r.decision)],
    ["identity", identity],
    ["prev_hash", value(r.prev_hash)],
    ["rule", value(r.rule)],
    ["seq", value(r.seq)],
    ["session_id", value(r.session_id)],
    ["time", value(r.time)],
    ["type", value(r.type)],
  ]);
}

export function encodedAuditRecordHash(
  record: Omit<AuditRecord, "hash" | "identity" | "data">,
  identity: string | undefined,
  data: string | undefined,
): string {
  return sha256Hex(encodedAuditRecordText(record, identity, data));
}

/** A checkpoint signs exactly `{seq, hash, time}`. */
export function checkpointPayload(
  cp: Pick<Checkpoint, "seq" | "hash" | "time">,
): Pick<Checkpoint, "seq" | "hash" | "time"> {
  return { seq: cp.seq, hash: cp.hash, time: cp.time };
}

/** The recording chain starts from the hash of the session header, so the header cannot be edited either. */
export function sessionHeadHash(h: SessionHeader): string {
  return canonicalHash({
    session_id: h.session_id,
    connection: h.connection,
    protocol: h.protocol,
    identity: h.identity,
    started_at: h.started_at,
  });
}

export function recordingEventHash(ev: Omit<RecordingEvent, "hash"> & { hash?: string }): string {
  const { hash: _hash, ...rest } = ev;
  return canonicalHash(rest);
}

/**
 * The canonical JSON that recordingEventHash hashes, for an event whose `data` is given as canonical JSON text;
 * the recorder keeps this text's length for back-pressure and its SHA-256 is the event's hash.
 */
export function encodedRecordingEventText(ev: Omit<RecordingEvent, "hash" | "data">, data: string | undefined): string {
  return members([
    ["data", data],
    ["kind", value(ev.kind)],
    ["prev_hash", value(ev.prev_hash)],
    ["seq", value(ev.seq)],
    ["session_id", value(ev.session_id)],
    ["t", value(ev.t)],
  ]);
}

export function sealPayload(s: SealPayload | SessionSeal): SealPayload {
  return { session_id: s.session_id, count: s.count, last_hash: s.last_hash, ended_at: s.ended_at, reason: s.reason };
}
