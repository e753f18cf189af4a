/**
 * The audit log's event shapes. Field names are snake_case because they are the evidence format that users,
 * SIEMs and `gatehouse audit verify` read (DESIGN.md section 3, "Evidence").
 */

/** Known event types; adapters and later features may add more (the log accepts any dotted name). */
export type AuditEventType =
  | "gateway.start"
  | "gateway.stop"
  | "session.start"
  | "session.end"
  | "session.refused"
  | "request"
  | "request.blocked"
  /** An allowed request that was not forwarded after all (its recording event could not be taken). */
  | "request.refused"
  | "approval.requested"
  | "approval.granted"
  | "approval.denied"
  | "approval.expired"
  | "approval.cancelled"
  | "auth.failed"
  | "token.issued"
  | "policy.changed"
  | "retention.applied"
  | (string & {});

export interface AuditIdentity {
  subject: string;
  kind: "bot" | "human";
  groups: string[];
  issuer: string;
  token_id: string;
}

/** What a caller hands to the audit log. The log adds seq, time and the hash chain. */
export interface AuditEventInput {
  type: AuditEventType;
  identity?: AuditIdentity;
  connection?: string;
  session_id?: string;
  /** The policy outcome that this event records, when there was one. */
  decision?: "allow" | "deny" | "approve";
  /** The rule that made the decision, as a config path such as `connections[0].guardrails[1]`. */
  rule?: string;
  /** Type-specific details (statement text, parameters, reason, rows, duration...). JSON values only. */
  data?: Record<string, unknown>;
}

/** An event as stored: durable, numbered and chained. */
export interface AuditRecord extends AuditEventInput {
  /**
   * The gateway process whose chain holds this record (its folder under DATA/evidence). Absent in records
   * written before the evidence log had writers (the store's single legacy chain).
   */
  writer?: string;
  /** 1-based position in the writer's chain; consecutive, never reused. */
  seq: number;
  /** ISO 8601 UTC with milliseconds. */
  time: string;
  /** `hash` of the previous record (64 zeros before the first retained one). */
  prev_hash: string;
  /** SHA-256 (hex) of the canonical encoding of this record without `hash`. */
  hash: string;
}
