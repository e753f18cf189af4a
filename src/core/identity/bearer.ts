import { AuthError } from "./errors.js";

/** Bearer credentials longer than this are refused before any parsing or hashing (bounded work per request). */
export const MAX_BEARER_LENGTH = 16 * 1024;

/**
 * Extracts the credential from an HTTP `Authorization` header (RFC 6750 section 2.1). The scheme is
 * case-insensitive; anything other than exactly one `Bearer <token>` is malformed.
 */
export function parseAuthorizationHeader(header: string | undefined | null): string {
  if (!header) throw new AuthError("malformed", "missing Authorization header");
  const match = /^\s*bearer[ \t]+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) throw new AuthError("malformed", "Authorization header must be 'Bearer <token>'");
  return checkBearer(match[1]);
}

/**
 * Rejects credentials no verifier could accept: empty, huge, or with control characters. Printable characters
 * (spaces included) pass, because static tokens may be any string an operator chose.
 */
export function checkBearer(bearer: string): string {
  if (typeof bearer !== "string" || bearer.length === 0) throw new AuthError("malformed", "empty bearer token");
  if (bearer.length > MAX_BEARER_LENGTH) throw new AuthError("malformed", "bearer token too long");
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(bearer)) throw new AuthError("malformed", "bearer token contains invalid characters");
  return bearer;
}
