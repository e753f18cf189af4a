import type { JWTPayload } from "jose";
import { createHash } from "node:crypto";
import { AuthError } from "./errors.js";
import type { IdentityKind } from "./identity.js";

/**
 * Reads a claim by name; when no claim has that exact name, a dotted name walks nested objects
 * (`realm_access.roles` for Keycloak). The exact name wins because URL-shaped claim names contain dots.
 */
export function readClaim(claims: JWTPayload, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  let value: unknown = claims;
  for (const part of name.split(".")) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/**
 * Groups from a claim: an array of strings, or one string separated by spaces or commas (as some IdPs send
 * scopes or roles). Missing means no groups. Non-string members are dropped: ignoring one only ever grants less.
 */
export function parseGroups(value: unknown): string[] {
  let items: string[];
  if (value === undefined || value === null) return [];
  if (typeof value === "string") items = value.split(/[\s,]+/);
  else if (Array.isArray(value)) items = value.filter((v): v is string => typeof v === "string");
  else throw new AuthError("malformed", "groups claim must be a string or an array of strings");
  return [...new Set(items.map((g) => g.trim()).filter((g) => g.length > 0))];
}

/** Claims that only tokens issued for a person carry (a login session, a profile). */
const HUMAN_CLAIMS = [
  "email",
  "preferred_username",
  "name",
  "given_name",
  "family_name",
  "nickname",
  "upn",
  "unique_name",
  "auth_time",
  "sid",
];

/**
 * `kind: auto`. A token is a bot's when the client authenticated as itself (client credentials: the subject is the
 * client, `client_id` or `azp`), or when it carries no claim that only a person's token has. Otherwise human.
 * When unsure the answer is "bot": a bot wrongly seen as human could approve requests, the reverse cannot.
 */
export function inferKind(claims: JWTPayload, subject: string): IdentityKind {
  const clientId = claims["client_id"] ?? claims["azp"];
  if (typeof clientId === "string" && clientId === subject) return "bot";
  return HUMAN_CLAIMS.some((c) => claims[c] !== undefined) ? "human" : "bot";
}

/** The subject claim as a non-empty string. */
export function readSubject(claims: JWTPayload, name: string): string {
  const value = readClaim(claims, name);
  if (value === undefined || value === null || value === "") {
    throw new AuthError("missing_claim", `token has no "${name}" claim`);
  }
  if (typeof value !== "string") throw new AuthError("malformed", `"${name}" claim must be a string`);
  return value;
}

/** `jti` when the token has one; otherwise a SHA-256 prefix of the token so evidence can still tell tokens apart. */
export function tokenIdOf(claims: JWTPayload, token: string): string {
  if (typeof claims.jti === "string" && claims.jti.length > 0) return claims.jti;
  return "sha256:" + createHash("sha256").update(token, "utf8").digest("hex").slice(0, 16);
}

export function expiresAtOf(claims: JWTPayload): Date | undefined {
  return typeof claims.exp === "number" ? new Date(claims.exp * 1000) : undefined;
}
