import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  jwtVerify,
  type CryptoKey,
  type FetchImplementation,
  type FlattenedJWSInput,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
  type RemoteJWKSet,
} from "jose";
import { ASYMMETRIC_ALGORITHMS, IdentityConfigError, MAX_CLOCK_SKEW_MS, type OidcIssuerConfig } from "./config.js";
import { AuthError } from "./errors.js";
import { KeysUnavailableError, toAuthError } from "./jose-errors.js";

export interface OidcIssuerOptions {
  now: () => Date;
  fetch: typeof fetch;
  /** After a failed discovery or key fetch, refuse at once (no new request) for this long. */
  retryCooldownMs: number;
  /** How long a fetched discovery document is used before it is fetched again. */
  discoveryMaxAgeMs: number;
  /** Per-request timeout for discovery and key fetches. */
  fetchTimeoutMs: number;
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** https, or plain http to a loopback address (local development and tests only). */
function isTrustedUrl(raw: string): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  return url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname));
}

/**
 * One trusted OpenID provider: its discovery document and signing keys, fetched lazily and cached, and the
 * verification of tokens it issued.
 */
export class OidcIssuer {
  readonly issuer: string;
  readonly algorithms: string[];
  private readonly audience: string | string[];
  private readonly clockToleranceSec: number;
  private jwks: RemoteJWKSet | undefined;
  private jwksUri: string | undefined;
  private discoveredAt = 0;
  private pending: Promise<RemoteJWKSet> | undefined;
  private unavailableUntil = 0;

  constructor(
    readonly config: OidcIssuerConfig,
    private readonly options: OidcIssuerOptions,
  ) {
    const where = `identity.oidc (${config.issuer})`;
    if (!isTrustedUrl(config.issuer)) {
      throw new IdentityConfigError(`${where}: issuer must be an https URL (http only on a loopback address)`);
    }
    if (config.jwks_uri !== undefined && !isTrustedUrl(config.jwks_uri)) {
      throw new IdentityConfigError(`${where}: jwks_uri must be an https URL (http only on a loopback address)`);
    }
    const audiences = Array.isArray(config.audience) ? config.audience : [config.audience];
    if (audiences.length === 0 || audiences.some((a) => typeof a !== "string" || a === "")) {
      throw new IdentityConfigError(`${where}: audience must be a non-empty string or list`);
    }
    const algorithms = config.algorithms ?? [...ASYMMETRIC_ALGORITHMS];
    const allowed: readonly string[] = ASYMMETRIC_ALGORITHMS;
    const refused = algorithms.filter((a) => !allowed.includes(a));
    if (algorithms.length === 0 || refused.length > 0) {
      throw new IdentityConfigError(
        `${where}: algorithms must be asymmetric (${ASYMMETRIC_ALGORITHMS.join(", ")}); refused: ${refused.join(", ")}`,
      );
    }
    const skew = config.clock_skew_ms ?? config.clock_skew ?? 30_000;
    if (!(skew >= 0 && skew <= MAX_CLOCK_SKEW_MS)) {
      throw new IdentityConfigError(`${where}: clock_skew_ms must be between 0 and ${MAX_CLOCK_SKEW_MS}`);
    }
    this.issuer = config.issuer;
    this.audience = config.audience;
    this.algorithms = algorithms;
    this.clockToleranceSec = Math.ceil(skew / 1000);
  }

  /** Verifies signature and standard claims; returns the verified claims. Throws AuthError. */
  async verify(token: string, header: ProtectedHeaderParameters): Promise<JWTPayload> {
    // Checked here as well as by jose so that a refused alg never triggers discovery or a key fetch.
    if (typeof header.alg !== "string" || !this.algorithms.includes(header.alg)) {
      throw new AuthError("alg_not_allowed", "token signing algorithm not allowed");
    }
    const subjectClaim = this.config.subject_claim ?? "sub";
    try {
      const { payload } = await jwtVerify(token, this.keyResolver, {
        issuer: this.issuer,
        audience: this.audience,
        algorithms: this.algorithms,
        clockTolerance: this.clockToleranceSec,
        currentDate: this.options.now(),
        // jose only checks presence of top-level names; nested subject claims are checked by the caller
        requiredClaims: subjectClaim.includes(".") ? ["exp"] : ["exp", subjectClaim],
      });
      return payload;
    } catch (err) {
      throw toAuthError(err);
    }
  }

  /**
   * jose calls this only after the alg check. Fetch problems become KeysUnavailableError; while the issuer is
   * unreachable, keys fetched earlier stay usable, so tokens already in circulation keep working through an IdP
   * outage (the same trade-off as any cached JWKS: a key revoked during the outage is learned after it).
   */
  private readonly keyResolver: JWTVerifyGetKey = async (header, token) => {
    const remote = await this.keys();
    if (this.options.now().getTime() < this.unavailableUntil) return this.fromLastKnown(remote, header, token);
    try {
      return await remote(header, token);
    } catch (err) {
      if (
        err instanceof errors.JWKSNoMatchingKey ||
        err instanceof errors.JWKSMultipleMatchingKeys ||
        err instanceof errors.JOSENotSupported
      ) {
        throw err;
      }
      this.markUnavailable();
      return this.fromLastKnown(remote, header, token, err);
    }
  };

  private async fromLastKnown(
    remote: RemoteJWKSet,
    header: JWSHeaderParameters,
    token: FlattenedJWSInput,
    cause?: unknown,
  ): Promise<CryptoKey> {
    const last = remote.jwks();
    if (!last) throw new KeysUnavailableError("signing keys could not be fetched", { cause });
    return createLocalJWKSet(last)(header, token);
  }

  private async keys(): Promise<RemoteJWKSet> {
    const now = this.options.now().getTime();
    if (this.jwks && now - this.discoveredAt < this.options.discoveryMaxAgeMs) return this.jwks;
    if (now < this.unavailableUntil) {
      if (this.jwks) return this.jwks;
      throw new KeysUnavailableError("issuer recently unreachable");
    }
    // one discovery in flight at a time, shared by concurrent verifications
    this.pending ??= this.discover().finally(() => {
      this.pending = undefined;
    });
    try {
      return await this.pending;
    } catch (err) {
      // a failed refresh keeps the previous discovery result
      if (this.jwks) return this.jwks;
      throw err;
    }
  }

  private async discover(): Promise<RemoteJWKSet> {
    try {
      const jwksUri = this.config.jwks_uri ?? (await this.fetchDiscovery());
      // Keep the key set object while the URI is unchanged: it holds jose's key cache.
      if (!this.jwks || this.jwksUri !== jwksUri) {
        this.jwks = createRemoteJWKSet(new URL(jwksUri), {
          timeoutDuration: this.options.fetchTimeoutMs,
          [customFetch]: this.options.fetch as FetchImplementation,
        });
        this.jwksUri = jwksUri;
      }
      this.discoveredAt = this.options.now().getTime();
      return this.jwks;
    } catch (err) {
      this.markUnavailable();
      throw err instanceof KeysUnavailableError
        ? err
        : new KeysUnavailableError("discovery document could not be fetched", { cause: err });
    }
  }

  private async fetchDiscovery(): Promise<string> {
    const url = this.issuer.replace(/\/$/, "") + "/.well-known/openid-configuration";
    const response = await this.options.fetch(url, {
      headers: { accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(this.options.fetchTimeoutMs),
    });
    if (response.status !== 200) {
      throw new KeysUnavailableError(`discovery document: HTTP ${response.status}`);
    }
    const doc = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
    // OIDC Discovery 4.3: a document naming another issuer must not be used (prevents issuer mix-up)
    if (doc.issuer !== this.issuer) throw new KeysUnavailableError("discovery document names a different issuer");
    if (typeof doc.jwks_uri !== "string" || !isTrustedUrl(doc.jwks_uri)) {
      throw new KeysUnavailableError("discovery document has no usable jwks_uri");
    }
    if (new URL(this.issuer).protocol === "https:" && new URL(doc.jwks_uri).protocol !== "https:") {
      throw new KeysUnavailableError("discovery document jwks_uri must be https");
    }
    return doc.jwks_uri;
  }

  private markUnavailable(): void {
    this.unavailableUntil = this.options.now().getTime() + this.options.retryCooldownMs;
  }
}
