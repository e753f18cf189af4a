import type { AuditIdentity } from "../evidence/audit-event.js";
import type { Identity } from "../identity/identity.js";

/**
 * The identity as the evidence format spells it (snake_case, no expiry). Frozen: a session appends it with every
 * event, and the audit log encodes a frozen identity once instead of once per event.
 */
export function toAuditIdentity(identity: Identity): AuditIdentity {
  return Object.freeze({
    subject: identity.subject,
    kind: identity.kind,
    groups: Object.freeze([...identity.groups]) as string[],
    issuer: identity.issuer,
    token_id: identity.tokenId,
  });
}
