import type { Identity } from "../identity/identity.js";
import { SubjectSet } from "../policy/subjects.js";
import { toAuditIdentity } from "../session/audit-identity.js";
import type { ApprovalRecord } from "./types.js";

/** Why a vote was refused; each maps to one API status so clients can tell them apart. */
export type VoteRefusal =
  | "not_pending" // decided, expired, cancelled or consumed: nothing left to vote on
  | "self_approval" // the requester, or someone holding the requester's credential
  | "not_an_approver"
  | "already_voted"
  | "reason_required";

export class VoteRefusedError extends Error {
  constructor(
    readonly code: VoteRefusal,
    message: string,
  ) {
    super(message);
    this.name = "VoteRefusedError";
  }
}

/**
 * The one place the "approval only by someone else" rule lives. The same subject (whatever the issuer) or the
 * same credential id counts as the requester: a shared bot token must not approve its own requests.
 */
export function isRequester(record: ApprovalRecord, who: Identity): boolean {
  return who.subject === record.requester.subject || who.tokenId === record.requester.token_id;
}

/** Why nothing can be decided any more, in words an approver understands. */
export function notPendingMessage(record: ApprovalRecord): string {
  switch (record.status) {
    case "cancelled":
      return `approval request ${record.id} was cancelled (${record.end_reason ?? "its session ended"}); nothing runs, the requester must send the request again`;
    case "expired":
      return `approval request ${record.id} expired at ${record.expires_at} without a decision`;
    case "consumed":
      return `approval request ${record.id} was already granted and used`;
    default:
      return `approval request ${record.id} is already ${record.status}`;
  }
}

/**
 * Applies one vote to a pending request and returns the new record (same version: the store bumps it).
 * Throws VoteRefusedError. A deny by any approver ends the request; `min_approvals` distinct approvers grant it.
 */
export function applyVote(
  record: ApprovalRecord,
  approver: Identity,
  vote: "approve" | "deny",
  reason: string | undefined,
  now: Date,
): ApprovalRecord {
  if (record.status === "pending" && now.getTime() >= Date.parse(record.expires_at)) {
    throw new VoteRefusedError("not_pending", notPendingMessage({ ...record, status: "expired" }));
  }
  if (record.status !== "pending") throw new VoteRefusedError("not_pending", notPendingMessage(record));
  if (isRequester(record, approver)) {
    throw new VoteRefusedError(
      "self_approval",
      `${approver.subject} made approval request ${record.id} (or shares its credential) and cannot decide it`,
    );
  }
  const via = new SubjectSet(record.approvers).match(approver);
  if (via === undefined) {
    throw new VoteRefusedError(
      "not_an_approver",
      `${approver.subject} is not an approver of ${record.id} (approvers: ${record.approvers.join(", ")})`,
    );
  }
  if (record.votes.some((v) => v.approver.subject === approver.subject || v.approver.token_id === approver.tokenId)) {
    throw new VoteRefusedError("already_voted", `${approver.subject} has already voted on ${record.id}`);
  }
  const why = reason?.trim();
  if (record.reason_required && !why) {
    throw new VoteRefusedError("reason_required", `a reason is required to ${vote} ${record.id} (--reason)`);
  }
  const votes = [
    ...record.votes,
    { vote, approver: toAuditIdentity(approver), at: now.toISOString(), ...(why ? { reason: why } : {}) },
  ];
  const approvals = votes.filter((v) => v.vote === "approve").length;
  if (vote === "deny") return { ...record, votes, status: "denied", decided_at: now.toISOString() };
  if (approvals < record.min_approvals) return { ...record, votes };
  return { ...record, votes, status: "granted", decided_at: now.toISOString() };
}

/** Subjects whose approvals granted the request, for the request's own audit record. */
export function approversOf(record: ApprovalRecord): string[] {
  return record.votes.filter((v) => v.vote === "approve").map((v) => v.approver.subject);
}
