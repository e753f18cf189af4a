/**
 * What exactly is hashed and signed. Both the writers (audit-log.ts, recorder.ts) and verify.ts use these
 * functions, and docs/evidence.md restates them for independent verifiers.
 */
import type { AuditRecord } from "./audit-event.js";
import { canonicalHash, canonicalJson, RawJson } from "./canonical.js";
import type { Checkpoint, RecordingEvent, SealPayload, SessionHeader, SessionSeal } from "./records.js";

/** hash = SHA-256 of the canonical JSON of the record with every field except `hash`. */
export function auditRecordHash(record: Omit<AuditRecord, "hash"> & { hash?: string }): string {
  const { hash: _hash, ...rest } = record;
  return canonicalHash(rest);
}

const raw = (text: string | undefined): RawJson | undefined => (text === undefined ? undefined : new RawJson(text));

/**
 * auditRecordHash for a record whose `identity` and `data` are given as their canonical JSON text
 * (`canonicalize`): the same hash, without encoding those parts a second time.
 */
export function encodedAuditRecordHash(
  record: Omit<AuditRecord, "hash" | "identity" | "data">,
  identity: string | undefined,
  data: string | undefined,
): string {
  return canonicalHash({ ...record, identity: raw(identity), data: raw(data) });
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
  return canonicalJson({ ...ev, data: raw(data) });
}

export function sealPayload(s: SealPayload | SessionSeal): SealPayload {
  return { session_id: s.session_id, count: s.count, last_hash: s.last_hash, ended_at: s.ended_at, reason: s.reason };
}
