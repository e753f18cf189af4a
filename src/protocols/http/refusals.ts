import type { RefusalAnswers } from "../../core/adapter/index.js";

/**
 * The HTTP status each refusal answers with. The body says why: an RFC 9457 problem document for HTTP
 * connections, a Kubernetes `Status` object for Kubernetes connections (kubectl prints its message).
 */
export const HTTP_REFUSALS: RefusalAnswers<number> = {
  session: { unknown_connection: 404, wrong_protocol: 404, no_access: 403, evidence_unavailable: 503 },
  request: {
    denied: 403,
    approval_denied: 403,
    approval_expired: 403,
    approval_cancelled: 403,
    approval_pending: 403,
    evidence_unavailable: 503,
  },
};

/** Why a request got no answer from the target. `kind` names the problem type; `status` is the HTTP status. */
export interface Refusal {
  status: number;
  kind: string;
  message: string;
  rule?: string | undefined;
  approvalId?: string | undefined;
}

const TITLES: Record<number, string> = {
  400: "Bad request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not found",
  413: "Request too large",
  502: "Bad gateway",
  503: "Service unavailable",
};

const K8S_REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  413: "RequestEntityTooLarge",
  502: "InternalError",
  503: "ServiceUnavailable",
};

/** An RFC 9457 problem document (application/problem+json), with the rule and approval id as extensions. */
export function problemBody(r: Refusal): { contentType: string; body: string } {
  const doc = {
    type: `https://gatehouse.dev/problems/${r.kind.replace(/_/g, "-")}`,
    title: TITLES[r.status] ?? "Refused",
    status: r.status,
    detail: r.message,
    ...(r.rule !== undefined ? { rule: r.rule } : {}),
    ...(r.approvalId !== undefined ? { approval_id: r.approvalId } : {}),
  };
  return { contentType: "application/problem+json", body: JSON.stringify(doc) };
}

/** A Kubernetes `Status` (kubectl prints `Error from server (Forbidden): <message>`). */
export function kubernetesStatusBody(r: Refusal): { contentType: string; body: string } {
  const doc = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: `gatehouse: ${r.message}`,
    reason: K8S_REASONS[r.status] ?? "Forbidden",
    details: {
      ...(r.rule !== undefined ? { causes: [{ reason: "GatehouseRule", message: r.rule }] } : {}),
      ...(r.approvalId !== undefined ? { uid: r.approvalId } : {}),
    },
    code: r.status,
  };
  return { contentType: "application/json", body: JSON.stringify(doc) };
}
