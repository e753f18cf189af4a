/** Who is behind a request, after the bearer credential was verified. Protocol-neutral. */
export type IdentityKind = "bot" | "human";

export interface Identity {
  /** Stable subject: the JWT `sub`, or the static token's name. */
  subject: string;
  kind: IdentityKind;
  /** Group names, without the `group:` prefix used in access lists. */
  groups: string[];
  /** The OIDC issuer URL, or "gatehouse" for static tokens and gateway-minted tokens. */
  issuer: string;
  /** Identifies the credential itself (JWT `jti`, or the static token's name) so evidence can name it. */
  tokenId: string;
  /** When the credential stops being valid, if it says. */
  expiresAt?: Date;
}
