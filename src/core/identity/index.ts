export type { Identity, IdentityKind } from "./identity.js";
export type { IdentityConfig, OidcIssuerConfig, StaticTokenConfig } from "./config.js";
export { IdentityConfigError } from "./config.js";
export { AuthError, isAuthError, type AuthErrorCode } from "./errors.js";
export { parseAuthorizationHeader } from "./bearer.js";
export { IdentityVerifier, type IdentityVerifierOptions } from "./verifier.js";
export {
  GatewayTokenIssuer,
  GATEWAY_ISSUER,
  gatewayTokenKeyPath,
  type MintRequest,
  type MintedToken,
} from "./gateway-tokens.js";
export { generateStaticToken, sha256Hex, STATIC_TOKEN_PREFIX } from "./static-tokens.js";
export {
  loadSshCa,
  MAX_SSH_CERT_TTL_MS,
  signSshUserCert,
  SSH_CERT_ALGO,
  SSH_CERT_ISSUER,
  sshCaKeyPath,
  verifySshUserCert,
  type SignedSshCert,
  type SshCertRequest,
  type VerifiedSshCert,
} from "./ssh-cert.js";
