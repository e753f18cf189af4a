/**
 * The `identity` section of gatehouse.yaml, as the policy schema (src/core/policy) produces it after validation
 * and defaults. Declared here so identity does not depend on the policy module; the shapes must stay equal.
 */

export interface OidcIssuerConfig {
  /** Exact issuer URL; a token's `iss` must equal it byte for byte (OIDC Discovery section 4.3). */
  issuer: string;
  audience: string | string[];
  groups_claim?: string;
  subject_claim?: string;
  kind?: "bot" | "human" | "auto";
  /** JWS algorithms accepted from this issuer; asymmetric only. Default: every asymmetric algorithm. */
  algorithms?: string[];
  /** Tolerance for exp/nbf, milliseconds (default 30 s, at most 5 min). */
  clock_skew_ms?: number;
  /** The same, as the policy schema names it (`clock_skew: 30s`, parsed to milliseconds). */
  clock_skew?: number;
  /** Skips discovery and fetches keys from here. */
  jwks_uri?: string;
}

export interface StaticTokenConfig {
  name: string;
  /** SHA-256 of the token, 64 lowercase hex characters. The token itself is never stored. */
  sha256: string;
  groups: string[];
  kind: "bot" | "human";
  /** ISO 8601 (or the Date the policy schema parses it into); the token is refused from this instant on. */
  expires?: string | Date;
}

export interface IdentityConfig {
  oidc: OidcIssuerConfig[];
  tokens: StaticTokenConfig[];
}

/** Signature algorithms that need a public key to verify. Symmetric (HS*) and `none` are never accepted. */
export const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

export const MAX_CLOCK_SKEW_MS = 300_000;

/** Raised at construction for a configuration the verifier refuses to run with. */
export class IdentityConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IdentityConfigError";
  }
}
