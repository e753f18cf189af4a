import { jwtVerify, SignJWT } from "jose";
import { createPublicKey, randomUUID, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { loadOrCreateEd25519Key } from "../keys.js";
import { readSubject, parseGroups } from "./claims.js";
import { AuthError } from "./errors.js";
import type { Identity, IdentityKind } from "./identity.js";
import { toAuthError } from "./jose-errors.js";

/** `iss` and `aud` of tokens the gateway mints for itself. Never a URL, so it cannot collide with an OIDC issuer. */
export const GATEWAY_ISSUER = "gatehouse";
export const DEFAULT_GATEWAY_TOKEN_TTL_MS = 60 * 60 * 1000;
export const MAX_GATEWAY_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;
/** Clock tolerance for gateway tokens: replicas share no clock but should be close. */
const GATEWAY_CLOCK_TOLERANCE_SEC = 30;

/** Where the signing key lives under the data directory. */
export function gatewayTokenKeyPath(dataDir: string): string {
  return join(dataDir, "keys", "token-signing.pem");
}

export interface MintRequest {
  subject: string;
  groups?: string[];
  kind?: IdentityKind;
  /** Default 1 hour; more than 24 hours is refused. */
  ttlMs?: number;
}

export interface MintedToken {
  token: string;
  jti: string;
  expiresAt: Date;
}

/**
 * Short-lived EdDSA tokens signed by the gateway's own key, for demos, development and exchanging one
 * credential for a narrower one. The verifier accepts them only when given the matching public key.
 */
export class GatewayTokenIssuer {
  readonly publicKey: KeyObject;

  constructor(
    private readonly privateKey: KeyObject,
    private readonly now: () => Date = () => new Date(),
  ) {
    if (privateKey.type !== "private" || privateKey.asymmetricKeyType !== "ed25519") {
      throw new TypeError("gateway token signing key must be an Ed25519 private key");
    }
    this.publicKey = createPublicKey(privateKey);
  }

  /** Loads (or creates on first use) `<dataDir>/keys/token-signing.pem`. */
  static fromDataDir(dataDir: string, now?: () => Date): GatewayTokenIssuer {
    return new GatewayTokenIssuer(loadOrCreateEd25519Key(gatewayTokenKeyPath(dataDir)).privateKey, now);
  }

  async mint(request: MintRequest): Promise<MintedToken> {
    const ttlMs = request.ttlMs ?? DEFAULT_GATEWAY_TOKEN_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs < 1000 || ttlMs > MAX_GATEWAY_TOKEN_TTL_MS) {
      throw new RangeError("token lifetime must be between 1 second and 24 hours");
    }
    if (!request.subject) throw new TypeError("subject must not be empty");
    const kind = request.kind ?? "bot";
    if (kind !== "bot" && kind !== "human") throw new TypeError("kind must be bot or human");
    const iat = Math.floor(this.now().getTime() / 1000);
    const exp = iat + Math.floor(ttlMs / 1000);
    const jti = randomUUID();
    const token = await new SignJWT({ groups: request.groups ?? [], kind })
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT" })
      .setIssuer(GATEWAY_ISSUER)
      .setAudience(GATEWAY_ISSUER)
      .setSubject(request.subject)
      .setJti(jti)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(this.privateKey);
    return { token, jti, expiresAt: new Date(exp * 1000) };
  }
}

/**
 * Verifies a gateway-minted token against the gateway's public key. Only EdDSA is accepted, and the claims must be
 * exactly what `mint` writes, so no other token shape can pass as gateway-issued.
 */
export async function verifyGatewayToken(token: string, publicKey: KeyObject, now: Date): Promise<Identity> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, publicKey, {
      issuer: GATEWAY_ISSUER,
      audience: GATEWAY_ISSUER,
      algorithms: ["EdDSA"],
      typ: "JWT",
      clockTolerance: GATEWAY_CLOCK_TOLERANCE_SEC,
      currentDate: now,
      requiredClaims: ["exp", "sub", "jti"],
    }));
  } catch (err) {
    throw toAuthError(err);
  }
  const kind = payload["kind"];
  if (kind !== "bot" && kind !== "human") throw new AuthError("malformed", 'invalid "kind" claim');
  return {
    subject: readSubject(payload, "sub"),
    kind,
    groups: parseGroups(payload["groups"]),
    issuer: GATEWAY_ISSUER,
    tokenId: payload.jti as string,
    expiresAt: new Date((payload.exp as number) * 1000),
  };
}
