/**
 * Stored shapes of evidence other than audit events (those are in audit-event.ts). snake_case because these
 * are the evidence format that `gatehouse audit verify` and auditors read; docs/evidence.md describes each.
 */
import type { AuditIdentity } from "./audit-event.js";

/** A signed statement "the audit chain up to `seq` ends in `hash`". */
export interface Checkpoint {
  /** The writer whose chain it signs; absent for checkpoints of the legacy single chain. */
  writer?: string;
  seq: number;
  hash: string;
  time: string;
  /**
   * Base64 Ed25519 signature: for a writer's checkpoint over its signed note's body (segments/note.ts), for a
   * legacy one over canonical `{seq, hash, time}`.
   */
  signature: string;
  key_id: string;
  /** A writer's checkpoint as the signed note that was written to its log and sent to the sinks. */
  note?: string;
}

/** The part of a session fixed at its start; its canonical hash is the recording chain's first prev_hash. */
export interface SessionHeader {
  session_id: string;
  connection: string;
  protocol: string;
  identity?: AuditIdentity;
  started_at: string;
}

/** What the seal signs: Ed25519 over the canonical JSON of exactly these fields. */
export interface SealPayload {
  session_id: string;
  count: number;
  last_hash: string;
  ended_at: string;
  reason: string;
}

export interface SessionSeal extends SealPayload {
  signature: string;
  key_id: string;
}

export interface SessionRecord extends SessionHeader {
  /** Present once the session was sealed. */
  seal?: SessionSeal;
}

export type RecordingEventKind =
  "input" | "output" | "request" | "result" | "resize" | "decision" | "notice" | (string & {});

/** One timed event of a session recording, chained like the audit log but per session. */
export interface RecordingEvent {
  session_id: string;
  /** 1-based, consecutive within the session. */
  seq: number;
  /** Milliseconds since the session started (monotonic clock, never decreasing). */
  t: number;
  kind: RecordingEventKind;
  /** JSON data (masked text, sizes, statement...). */
  data?: unknown;
  prev_hash: string;
  /** SHA-256 (hex) of the canonical encoding of this event without `hash`. */
  hash: string;
}
