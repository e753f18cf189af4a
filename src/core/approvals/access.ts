import type { Identity } from "../identity/identity.js";
import type { CompiledPolicy } from "../policy/decide.js";
import { formatDuration } from "../policy/duration.js";
import type { ApprovalService } from "./service.js";
import type { ApprovalRecord } from "./types.js";

/** A request the workflow refuses before it is ever recorded (no such connection, no rule, bad duration). */
export class AccessRequestError extends Error {
  constructor(
    readonly code: "unknown_connection" | "not_requestable" | "invalid_duration" | "reason_required",
    message: string,
  ) {
    super(message);
    this.name = "AccessRequestError";
  }
}

/**
 * `gatehouse access request CONN --for 30m --reason ...`: a pending request that, once approved, lets the
 * identity use the connection until `duration` after the approval. Only connections with `access_requests`
 * accept them; the window is capped by that rule's `max`; the requester always says why.
 */
export async function requestAccess(
  service: ApprovalService,
  policy: CompiledPolicy,
  requester: Identity,
  input: { connection: string; durationMs: number; reason: string },
): Promise<ApprovalRecord> {
  const connection = policy.connection(input.connection);
  if (!connection) throw new AccessRequestError("unknown_connection", `no connection named "${input.connection}"`);
  const rule = connection.config.access_requests;
  if (!rule) {
    throw new AccessRequestError(
      "not_requestable",
      `connection "${input.connection}" does not accept access requests (no access_requests rule)`,
    );
  }
  if (!Number.isFinite(input.durationMs) || input.durationMs < 60_000 || input.durationMs > rule.max) {
    throw new AccessRequestError(
      "invalid_duration",
      `access can be requested for 1m to ${formatDuration(rule.max)} on "${input.connection}"`,
    );
  }
  const reason = input.reason.trim();
  if (!reason) throw new AccessRequestError("reason_required", "an access request needs a reason (--reason)");
  return service.request({
    kind: "access",
    requester,
    connection: input.connection,
    reason,
    durationMs: input.durationMs,
    rule: {
      path: `connections[${connection.index}].access_requests`,
      summary: `access for ${formatDuration(input.durationMs)}`,
    },
    approvers: rule.approvers,
    minApprovals: rule.min_approvals,
    reasonRequired: rule.reason_required,
    pendingMs: service.settings.pendingMs,
  });
}
