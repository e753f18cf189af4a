import type { AuditIdentity } from "../evidence/audit-event.js";
import type { RuleRef } from "../policy/decide.js";

/**
 * What an approval request is for:
 *   hold    a live request whose client waits in-protocol (it dies with its session)
 *   retry   a `hold: 0` request: refused now, the identical request runs once after approval
 *   access  a time-window grant to use a connection
 */
export type ApprovalKind = "hold" | "retry" | "access";

/** `consumed`: a granted retry request whose one run has happened. */
export type ApprovalStatus = "pending" | "granted" | "denied" | "expired" | "cancelled" | "consumed";

export interface ApprovalVote {
  vote: "approve" | "deny";
  approver: AuditIdentity;
  /** ISO 8601. */
  at: string;
  reason?: string;
}

/** The request a hold/retry approval is about, as the client sent it. */
export interface HeldRequest {
  protocol: string;
  text: string;
  /** Normalized shape (literals removed): for people grouping requests, never for matching a retry. */
  fingerprint: string;
  parameters?: readonly (string | null)[];
}

/** One approval request as stored. Snake_case: it is part of the evidence and API formats. */
export interface ApprovalRecord {
  id: string;
  kind: ApprovalKind;
  status: ApprovalStatus;
  connection: string;
  /** The session that made it (hold and retry). */
  session_id?: string;
  requester: AuditIdentity;
  request?: HeldRequest;
  /** The requester's own reason (access requests). */
  reason?: string;
  /** Access requests: how long the grant lasts once approved (ms). */
  duration_ms?: number;
  /** The policy rule that asked for approval. */
  rule: RuleRef;
  /** Subject list (`group:dba`, `subject:alice`...) whose members may decide. */
  approvers: string[];
  min_approvals: number;
  reason_required: boolean;
  votes: ApprovalVote[];
  created_at: string;
  /** A pending request is no longer approvable from this time on. */
  expires_at: string;
  decided_at?: string;
  /** Granted access: usable until then. Granted retry: the identical request may run once until then. */
  valid_until?: string;
  /** Why it ended when nobody voted it down (expired, cancelled). */
  end_reason?: string;
  /** Retry requests: what "identical" means (identity, connection, exact text, parameters). */
  exact_key?: string;
  /** Optimistic concurrency: every update names the version it read. */
  version: number;
}

export interface ApprovalQuery {
  statuses?: readonly ApprovalStatus[];
  kind?: ApprovalKind;
  exactKey?: string;
  connection?: string;
  requesterSubject?: string;
  limit?: number;
}

/** The store's part: approval records survive a restart. */
export interface ApprovalStore {
  insertApproval(record: ApprovalRecord): Promise<void>;
  getApproval(id: string): Promise<ApprovalRecord | undefined>;
  /** Newest first. */
  listApprovals(query?: ApprovalQuery): Promise<ApprovalRecord[]>;
  /** Writes `record` (version + 1) only if the stored version is still `record.version`; false otherwise. */
  updateApproval(record: ApprovalRecord): Promise<boolean>;
}
