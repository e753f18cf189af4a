/**
 * What exactly is hashed and signed. Both the writers (audit-log.ts, recorder.ts) and verify.ts use these
 * functions, and docs/evidence.md restates them for independent verifiers.
 */
import type { AuditRecord } from "./audit-event.js";
import { canonicalHash, canonicalJson } from "./canonical.js";
import type { Checkpoint, RecordingEvent, SealPayload, SessionHeader, SessionSeal } from "./records.js";

/** hash = SHA-256 of the canonical JSON of the record with every field except `hash`. */
export function auditRecordHash(record: Omit<AuditRecord, "hash"> & { hash?: string }): string {
  const { hash: _hash, ...rest } = record;
  return canonicalHash(rest);
}

// The hot records have a fixed set of members, so their canonical JSON is written in key order directly instead
// of sorting keys per record: plain string building, no intermediate arrays (this runs for every statement).
// The member order below must stay sorted by UTF-16 code units; chain.test.ts compares each encoder with
// canonicalJson of the same record.
const json = JSON.stringify;

/** `,"key":value` for a member that may be absent; the caller strips the leading comma of the first member. */
function opt(key: string, v: string | undefined): string {
  return v === undefined ? "" : `,"${key}":${v}`;
}

function optString(key: string, v: string | undefined | null): string {
  return v === undefined || v === null ? "" : `,"${key}":${quoted(v)}`;
}

// A record's short string members repeat (its writer, connection, session, type, decision, the batch's time):
// each is quoted once. Bounded, since they can take any value.
const QUOTED_LIMIT = 4096;
const quotedCache = new Map<string, string>();

function quoted(v: string): string {
  if (v.length > 128) return json(v);
  let q = quotedCache.get(v);
  if (q === undefined) {
    q = json(v);
    if (quotedCache.size >= QUOTED_LIMIT) quotedCache.clear();
    quotedCache.set(v, q);
  }
  return q;
}

const HEX_HASH = /^[0-9a-f]{64}$/;

/** A hash is 64 hex digits: quoted as it is (anything else, e.g. a tampered record being checked, via JSON). */
function quotedHash(v: string): string {
  return HEX_HASH.test(v) ? `"${v}"` : json(v);
}

/** seq and t are integers; anything else goes through canonicalJson, which refuses non-finite numbers. */
function num(v: number): string {
  return Number.isSafeInteger(v) ? String(v) : canonicalJson(v);
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
  const members =
    optString("connection", r.connection) +
    opt("data", data) +
    optString("decision", r.decision) +
    opt("identity", identity) +
    `,"prev_hash":${quotedHash(r.prev_hash)}` +
    optString("rule", r.rule) +
    `,"seq":${num(r.seq)}` +
    optString("session_id", r.session_id) +
    `,"time":${quoted(r.time)}` +
    `,"type":${quoted(r.type)}` +
    optString("writer", r.writer);
  return `{${members.slice(1)}}`;
}

/** A checkpoint signs exactly `{seq, hash, time}`. */
export function checkpointPayload(
  cp: Pick<Checkpoint, "seq" | "hash" | "time">,
): Pick<Checkpoint, "seq" | "hash" | "time"> {
  return { seq: cp.seq, hash: cp.hash, time: cp.time };
}

/** The members of a session header that its hash covers (and an evidence log's `s` line holds). */
export function sessionHeaderFields(h: SessionHeader): SessionHeader {
  return {
    session_id: h.session_id,
    connection: h.connection,
    protocol: h.protocol,
    ...(h.identity !== undefined ? { identity: h.identity } : {}),
    started_at: h.started_at,
  };
}

/** The recording chain starts from the hash of the session header, so the header cannot be edited either. */
export function sessionHeadHash(h: SessionHeader): string {
  return canonicalHash(sessionHeaderFields(h));
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
  return (
    `{${data === undefined ? "" : `"data":${data},`}"kind":${quoted(ev.kind)},"prev_hash":${quotedHash(ev.prev_hash)},` +
    `"seq":${num(ev.seq)},"session_id":${quoted(ev.session_id)},"t":${num(ev.t)}}`
  );
}

export function sealPayload(s: SealPayload | SessionSeal): SealPayload {
  return { session_id: s.session_id, count: s.count, last_hash: s.last_hash, ended_at: s.ended_at, reason: s.reason };
}

/** A seal as stored: what it signs, its signature and the signing key's id (no other members). */
export function sealRecord(s: SessionSeal): SessionSeal {
  return { ...sealPayload(s), signature: s.signature, key_id: s.key_id };
}
