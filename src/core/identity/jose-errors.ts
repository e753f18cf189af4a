import { errors } from "jose";
import { AuthError } from "./errors.js";

/** Thrown by our key resolver when keys could not be fetched; kept apart from errors about the token itself. */
export class KeysUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KeysUnavailableError";
  }
}

/** Maps an error from `jwtVerify` (or our key resolver) to the refusal a client sees. */
export function toAuthError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof KeysUnavailableError) {
    return new AuthError("issuer_unavailable", "token issuer unavailable, try again later", { cause: err });
  }
  // JWTExpired extends JWTClaimValidationFailed, so it comes first
  if (err instanceof errors.JWTExpired) return new AuthError("expired", "token expired", { cause: err });
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === "missing") {
      return new AuthError("missing_claim", `token has no "${err.claim}" claim`, { cause: err });
    }
    switch (err.claim) {
      case "nbf":
        return new AuthError("not_yet_valid", "token not yet valid", { cause: err });
      case "aud":
        return new AuthError("wrong_audience", "token not issued for this gateway", { cause: err });
      case "iss":
        return new AuthError("wrong_issuer", "token issuer not trusted", { cause: err });
      default:
        return new AuthError("malformed", `invalid "${err.claim}" claim`, { cause: err });
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new AuthError("alg_not_allowed", "token signing algorithm not allowed", { cause: err });
  }
  if (
    err instanceof errors.JWSSignatureVerificationFailed ||
    err instanceof errors.JWKSNoMatchingKey ||
    err instanceof errors.JWKSMultipleMatchingKeys ||
    err instanceof errors.JOSENotSupported
  ) {
    return new AuthError("bad_signature", "token signature invalid", { cause: err });
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return new AuthError("malformed", "malformed token", { cause: err });
  }
  // A key of the wrong type for the header's alg surfaces as a TypeError from jose/WebCrypto.
  if (err instanceof TypeError) return new AuthError("bad_signature", "token signature invalid", { cause: err });
  return new AuthError("malformed", "token could not be verified", { cause: err });
}
