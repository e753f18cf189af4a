import type { AuditIdentity } from "../evidence/audit-event.js";
import type { Identity } from "../identity/identity.js";

/** The identity as the evidence format spells it (snake_case, no expiry). */
export function toAuditIdentity(identity: Identity): AuditIdentity {
  return {
    subject: identity.subject,
    kind: identity.kind,
    groups: [...identity.groups],
    issuer: identity.issuer,
    token_id: identity.tokenId,
  };
}
