/** Why a bearer credential was refused. Evidence (`auth.failed`) records the code; clients see the message. */
export type AuthErrorCode =
  | "malformed"
  | "unknown_token"
  | "expired"
  | "not_yet_valid"
  | "bad_signature"
  | "wrong_audience"
  | "wrong_issuer"
  | "alg_not_allowed"
  | "missing_claim"
  | "issuer_unavailable";

/**
 * A refused credential. `message` is short and safe to send to the client: it never contains the token, and it
 * names only what the client could already see in its own token (claim names, never expected values).
 */
export class AuthError extends Error {
  constructor(
    readonly code: AuthErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "AuthError";
  }
}

export function isAuthError(err: unknown): err is AuthError {
  return err instanceof AuthError;
}
