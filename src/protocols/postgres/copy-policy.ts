import type { GatedSession } from "../../core/session/gate.js";
import type { OwnRefusal } from "./refusals.js";
import type { Analysis } from "./sql-reading.js";

/**
 * Which COPY ... TO STDOUT a connection lets through. CopyData rows carry no column identity, so they cannot be
 * masked by column, and binary rows cannot be scanned by content detectors: on a connection that masks, such a
 * COPY is refused before it reaches the target (fail closed). Kept apart from the dispatcher so the one rule has
 * one home, for the frontend's check and for the relay's last-resort refusal alike.
 */
export interface CopyOutPolicy {
  /** Column masking is configured: every COPY ... TO STDOUT is refused. */
  refuseCopyOut: boolean;
  /** Content detectors are configured: a COPY ... TO STDOUT in binary (or an unreadable format) is refused. */
  refuseBinaryCopyOut: boolean;
}

const COPY_OUT_COLUMNS: OwnRefusal = {
  reason: "COPY ... TO STDOUT cannot be masked by column on a connection with column masking",
  hint: "select the rows instead: query results are masked",
};

export const COPY_OUT_BINARY: OwnRefusal = {
  reason: "binary COPY ... TO STDOUT cannot be scanned by the content detectors of this connection",
  hint: "use FORMAT text or csv: their rows are scanned and masked",
};

const COPY_OUT_FORMAT: OwnRefusal = {
  reason: "COPY ... TO STDOUT in a format the gateway cannot read cannot be scanned by the content detectors",
  hint: COPY_OUT_BINARY.hint,
};

/**
 * Why a COPY ... TO STDOUT in this request cannot be let through, if it cannot. Costs nothing on a connection
 * without masking.
 *
 * Binary output is recognised by the COPY format the analyzer read from the parse tree (`FORMAT binary` in any
 * spelling the parser resolves, `E'\x62inary'` included, and the older `COPY BINARY t` / `WITH BINARY`); a
 * format it could not resolve (`unknown`) is refused as well, and a column named `binary` is just a column.
 * Should binary output get past this anyway (the server reading the text differently, e.g. after
 * `SET standard_conforming_strings = off`), the relay sees the target's binary CopyOutResponse and closes the
 * session before any row passes.
 */
export function copyOutRefusal(analysis: Analysis, policy: CopyOutPolicy): OwnRefusal | undefined {
  if (!policy.refuseCopyOut && !policy.refuseBinaryCopyOut) return undefined;
  for (const s of analysis.statements) {
    if (s.copy?.direction !== "to" || s.copy.via !== "stdio") continue;
    if (policy.refuseCopyOut) return COPY_OUT_COLUMNS;
    if (s.copy.format === "binary") return COPY_OUT_BINARY;
    if (s.copy.format !== "text" && s.copy.format !== "csv") return COPY_OUT_FORMAT;
  }
  return undefined;
}

/** The configuration a COPY refusal names: the connection's masking rules. */
export function maskingRule(session: GatedSession): string {
  return `connections[${session.connection.index}].masking`;
}
