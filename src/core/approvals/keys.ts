import { createHash, randomBytes } from "node:crypto";
import type { AuditIdentity } from "../evidence/audit-event.js";

/** Approval ids sort by creation time and carry 64 random bits, like session ids. */
export function newApprovalId(now: number = Date.now()): string {
  return `a_${now.toString(36).padStart(9, "0")}${randomBytes(8).toString("hex")}`;
}

/**
 * What makes a `hold: 0` retry "the identical request": the same identity (issuer + subject), the same
 * connection, the exact same text and the same parameters. Never the fingerprint, which drops literals, so an
 * approved `DELETE ... WHERE id = 1` cannot be replayed as `WHERE id = 2`.
 */
export function exactRequestKey(
  identity: Pick<AuditIdentity, "issuer" | "subject">,
  connection: string,
  text: string,
  parameters: readonly (string | null)[] | undefined,
): string {
  const canonical = JSON.stringify([identity.issuer, identity.subject, connection, text, parameters ?? null]);
  return createHash("sha256").update(canonical, "utf8").digest("hex");
}

/** A fallback fingerprint when the adapter's analyzer gave none: case and whitespace folded. */
export function roughFingerprint(text: string): string {
  return text.replace(/\s+/g, " ").trim().toLowerCase();
}
