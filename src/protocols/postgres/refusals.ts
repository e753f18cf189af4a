import type { RefusalAnswers } from "../../core/adapter/index.js";
import type { Admission, GatedSession } from "../../core/session/gate.js";
import { errorResponse, SQLSTATE } from "./wire.js";

/**
 * The SQLSTATE each refusal is answered with: a refused session gets a FATAL at login, a refused request an
 * ErrorResponse followed by ReadyForQuery (the session stays usable).
 */
export const POSTGRES_REFUSALS: RefusalAnswers<string> = {
  session: {
    unknown_connection: SQLSTATE.unknownDatabase,
    wrong_protocol: SQLSTATE.unknownDatabase,
    no_access: SQLSTATE.insufficientPrivilege,
    evidence_unavailable: SQLSTATE.systemError,
  },
  request: {
    denied: SQLSTATE.insufficientPrivilege,
    approval_denied: SQLSTATE.insufficientPrivilege,
    approval_expired: SQLSTATE.insufficientPrivilege,
    approval_cancelled: SQLSTATE.insufficientPrivilege,
    approval_pending: SQLSTATE.insufficientPrivilege,
    evidence_unavailable: SQLSTATE.insufficientPrivilege,
  },
};

/**
 * Sent to the target instead of a refused request, so the target itself produces an error at that point of the
 * pipeline: the transaction state is then exactly that of a failed statement (aborted inside a block, nothing
 * outside one), with no state tracking in the gateway. It is a syntax error, so the target never executes (or
 * logs as a statement) anything; the client sees the gateway's refusal in place of the target's error.
 */
export const ABORT_SQL = "gatehouse: request refused by policy";

/** The ErrorResponse a refused request gets: names the rule (path and summary), not the raw matcher. */
export function refusalAnswer(admission: Extract<Admission, { forward: false }>): Buffer {
  let message: string;
  if (admission.kind === "denied" && admission.rule) {
    message = `gatehouse: blocked by ${admission.rule.path} (${admission.rule.summary})`;
  } else if (admission.kind === "evidence_unavailable") {
    message = `gatehouse: ${admission.message}`;
  } else {
    message = `gatehouse: ${admission.message}${admission.approvalId ? ` (request ${admission.approvalId})` : ""}`;
  }
  return errorResponse({
    severity: "ERROR",
    code: POSTGRES_REFUSALS.request[admission.kind],
    message,
    ...(admission.kind === "denied" && admission.message !== message ? { detail: admission.message } : {}),
  });
}

/** Why the adapter refuses a request of its own accord (not a policy decision), and what the client can do. */
export interface OwnRefusal {
  reason: string;
  hint: string;
}

/** The message of the adapter's own refusal; `rule`: the configuration that makes it refuse, when one does. */
export function ownRefusalMessage(reason: string, rule?: string): string {
  return rule ? `gatehouse: blocked by ${rule} (${reason})` : `gatehouse: ${reason}`;
}

/**
 * A refusal of the adapter's own rather than of a policy decision (a COPY TO STDOUT that masking could not cover,
 * an Execute whose prepared statement changed): recorded as a blocked request, then the ErrorResponse for it.
 */
export async function ownRefusalAnswer(
  session: GatedSession,
  text: string,
  why: OwnRefusal,
  rule?: string,
): Promise<Buffer> {
  await session.refuse({ text }, { reason: why.reason, ...(rule ? { rule } : {}) });
  return errorResponse({
    severity: "ERROR",
    // recorded as a denial (GatedSession.refuse), answered as one
    code: POSTGRES_REFUSALS.request.denied,
    message: ownRefusalMessage(why.reason, rule),
    hint: why.hint,
  });
}
