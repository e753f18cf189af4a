import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from "jose";
import type { KeyObject } from "node:crypto";
import { checkBearer } from "./bearer.js";
import { expiresAtOf, inferKind, parseGroups, readClaim, readSubject, tokenIdOf } from "./claims.js";
import { IdentityConfigError, type IdentityConfig } from "./config.js";
import { AuthError } from "./errors.js";
import { GATEWAY_ISSUER, verifyGatewayToken } from "./gateway-tokens.js";
import type { Identity } from "./identity.js";
import { OidcIssuer } from "./oidc-issuer.js";
import { StaticTokenStore, type HashEquals } from "./static-tokens.js";

export interface IdentityVerifierOptions {
  /** Clock for every validity check (exp, nbf, static `expires`, retry cooldowns). */
  now?: () => Date;
  /** Used for discovery and JWKS requests. */
  fetch?: typeof fetch;
  /** Accept tokens minted by this gateway (`iss: gatehouse`), verified with this Ed25519 public key. */
  gatewayIssuer?: { publicKey: KeyObject };
  /** After an issuer could not be reached, refuse without a new request for this long. Default 5 s. */
  issuerRetryCooldownMs?: number;
  /** Discovery documents are fetched again after this long. Default 1 h. */
  discoveryMaxAgeMs?: number;
  /** Timeout per discovery/JWKS request. Default 5 s. */
  fetchTimeoutMs?: number;
  /** For tests: the comparison used on static token hashes. */
  staticTokenEquals?: HashEquals;
}

/** Media types a bearer JWT may declare (RFC 9068 access tokens, plain JWTs), or none at all. */
const ACCEPTED_TYP = new Set(["jwt", "at+jwt"]);

/**
 * Turns a bearer credential into an Identity, or refuses it with an AuthError. Every protocol adapter calls
 * `verify` with whatever the client sent as its password or bearer token.
 *
 * Order: a static token hash match first (cheap, constant work), then anything shaped like a JWT is routed by its
 * unverified `iss` to exactly one trusted issuer, which alone decides. `iss` only selects the verifier; it is
 * verified again as part of the signed claims.
 */
export class IdentityVerifier {
  private readonly staticTokens: StaticTokenStore;
  private readonly issuers = new Map<string, OidcIssuer>();
  private readonly now: () => Date;

  constructor(
    config: IdentityConfig,
    private readonly options: IdentityVerifierOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.staticTokens = new StaticTokenStore(config.tokens ?? [], options.staticTokenEquals);
    const issuerOptions = {
      now: this.now,
      fetch: options.fetch ?? globalThis.fetch,
      retryCooldownMs: options.issuerRetryCooldownMs ?? 5000,
      discoveryMaxAgeMs: options.discoveryMaxAgeMs ?? 60 * 60 * 1000,
      fetchTimeoutMs: options.fetchTimeoutMs ?? 5000,
    };
    for (const issuerConfig of config.oidc ?? []) {
      if (issuerConfig.issuer === GATEWAY_ISSUER) {
        throw new IdentityConfigError(`identity.oidc: issuer "${GATEWAY_ISSUER}" is reserved for gateway tokens`);
      }
      if (this.issuers.has(issuerConfig.issuer)) {
        throw new IdentityConfigError(`identity.oidc: issuer ${issuerConfig.issuer} is listed twice`);
      }
      this.issuers.set(issuerConfig.issuer, new OidcIssuer(issuerConfig, issuerOptions));
    }
  }

  async verify(bearer: string): Promise<Identity> {
    checkBearer(bearer);
    const now = this.now();
    const fromStatic = this.staticTokens.lookup(bearer, now);
    if (fromStatic) return fromStatic;
    if (!looksLikeJwt(bearer)) throw new AuthError("unknown_token", "unknown token");

    const { header, claims } = decodeUnverified(bearer);
    if (typeof header.typ === "string" && !ACCEPTED_TYP.has(header.typ.toLowerCase().replace(/^application\//, ""))) {
      throw new AuthError("malformed", "unsupported token type");
    }
    if (typeof claims.iss !== "string" || claims.iss === "") {
      throw new AuthError("missing_claim", 'token has no "iss" claim');
    }
    if (claims.iss === GATEWAY_ISSUER) {
      if (!this.options.gatewayIssuer) throw new AuthError("wrong_issuer", "token issuer not trusted");
      return verifyGatewayToken(bearer, this.options.gatewayIssuer.publicKey, now);
    }
    const issuer = this.issuers.get(claims.iss);
    if (!issuer) throw new AuthError("wrong_issuer", "token issuer not trusted");

    const verified = await issuer.verify(bearer, header);
    const { config } = issuer;
    const subject = readSubject(verified, config.subject_claim ?? "sub");
    const kind = config.kind ?? "auto";
    return {
      subject,
      kind: kind === "auto" ? inferKind(verified, subject) : kind,
      groups: parseGroups(readClaim(verified, config.groups_claim ?? "groups")),
      issuer: issuer.issuer,
      tokenId: tokenIdOf(verified, bearer),
      expiresAt: expiresAtOf(verified),
    };
  }
}

/** Three base64url segments, the compact JWS shape. JWE (five segments) is not accepted. */
function looksLikeJwt(value: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value);
}

function decodeUnverified(token: string): { header: ProtectedHeaderParameters; claims: JWTPayload } {
  try {
    return { header: decodeProtectedHeader(token), claims: decodeJwt(token) };
  } catch (err) {
    throw new AuthError("malformed", "malformed token", { cause: err });
  }
}
