/**
 * End to end: IdentityVerifier against a real OpenID provider over HTTP (discovery, JWKS, client_credentials
 * at+jwt access tokens), and against hand-made hostile tokens.
 */
import { createPublicKey, createSecretKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { SignJWT, decodeJwt, decodeProtectedHeader, importJWK, base64url } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuthError,
  IdentityVerifier,
  type AuthErrorCode,
  type OidcIssuerConfig,
} from "../../src/core/identity/index.js";
import { OTHER_RESOURCE, RESOURCE, startTestProvider, type TestProvider } from "./oidc-test-provider.js";

let idp: TestProvider;
let otherIdp: TestProvider;

const FUTURE_NBF = Math.floor(Date.now() / 1000) + 3600;

beforeAll(async () => {
  idp = await startTestProvider({
    claims: {
      "ci-bot": { groups: ["ci", "deploy"] },
      "deploy-bot": { groups: "deploy, release ops" },
      "future-bot": { groups: ["ci"], nbf: FUTURE_NBF },
    },
  });
  otherIdp = await startTestProvider({ claims: { "ci-bot": { groups: ["ci"] } } });
});

afterAll(async () => {
  await idp?.stop();
  await otherIdp?.stop();
});

function issuerConfig(overrides: Partial<OidcIssuerConfig> = {}): OidcIssuerConfig {
  return {
    issuer: idp.issuer,
    audience: RESOURCE,
    groups_claim: "groups",
    subject_claim: "sub",
    kind: "auto",
    clock_skew_ms: 30_000,
    ...overrides,
  };
}

function verifierFor(
  overrides: Partial<OidcIssuerConfig> = {},
  options: ConstructorParameters<typeof IdentityVerifier>[1] = {},
) {
  return new IdentityVerifier({ oidc: [issuerConfig(overrides)], tokens: [] }, options);
}

async function refusal(promise: Promise<unknown>): Promise<AuthError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected a refusal").toBeInstanceOf(AuthError);
  return err as AuthError;
}

async function expectCode(promise: Promise<unknown>, code: AuthErrorCode): Promise<AuthError> {
  const err = await refusal(promise);
  expect(err.code, err.message).toBe(code);
  return err;
}

function count(provider: TestProvider, suffix: string): number {
  let n = 0;
  for (const [path, c] of provider.requests) if (path.endsWith(suffix)) n += c;
  return n;
}

function jwksCount(provider: TestProvider): number {
  return count(provider, "/jwks");
}

function discoveryCount(provider: TestProvider): number {
  return count(provider, "/.well-known/openid-configuration");
}

/** A token with arbitrary header and claims, signed by `key` (or unsigned for alg none). */
async function handMade(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key?: KeyObject | Uint8Array,
) {
  if (!key) {
    const enc = (v: unknown) => base64url.encode(JSON.stringify(v));
    return `${enc(header)}.${enc(claims)}.`;
  }
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key);
}

describe("OIDC access tokens from a real provider", () => {
  it("verifies a client_credentials at+jwt into a bot identity with groups", async () => {
    const token = await idp.token("ci-bot");
    expect(decodeProtectedHeader(token).typ).toBe("at+jwt");
    const identity = await verifierFor().verify(token);
    expect(identity).toMatchObject({
      subject: "ci-bot",
      kind: "bot",
      groups: ["ci", "deploy"],
      issuer: idp.issuer,
      tokenId: decodeJwt(token).jti,
    });
    expect(identity.expiresAt?.getTime()).toBe((decodeJwt(token).exp as number) * 1000);
  });

  it("reads groups given as one comma/space separated string", async () => {
    const identity = await verifierFor().verify(await idp.token("deploy-bot"));
    expect(identity.groups).toEqual(["deploy", "release", "ops"]);
  });

  it("uses the configured kind and subject claim", async () => {
    const token = await idp.token("ci-bot");
    const human = await verifierFor({ kind: "human", subject_claim: "client_id" }).verify(token);
    expect(human).toMatchObject({ kind: "human", subject: "ci-bot" });
    await expectCode(verifierFor({ subject_claim: "email" }).verify(token), "missing_claim");
  });

  it("accepts any one of several configured audiences", async () => {
    const token = await idp.token("ci-bot");
    await expect(verifierFor({ audience: ["urn:x", RESOURCE] }).verify(token)).resolves.toMatchObject({
      subject: "ci-bot",
    });
  });

  it("refuses a token issued for another audience", async () => {
    const token = await idp.token("ci-bot", OTHER_RESOURCE);
    expect(decodeJwt(token).aud).toBe(OTHER_RESOURCE);
    await expectCode(verifierFor().verify(token), "wrong_audience");
  });

  it("refuses a token from an issuer that is not configured", async () => {
    const token = await otherIdp.token("ci-bot");
    await expectCode(verifierFor().verify(token), "wrong_issuer");
  });

  it("refuses when the discovery document names another issuer", async () => {
    // configured as localhost, the provider calls itself 127.0.0.1: the token claims the configured name
    const configured = idp.issuer.replace("127.0.0.1", "localhost");
    const real = await idp.token("ci-bot");
    const forgedIss = await handMade(
      decodeProtectedHeader(real),
      { ...decodeJwt(real), iss: configured },
      generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey,
    );
    const err = await expectCode(verifierFor({ issuer: configured }).verify(forgedIss), "issuer_unavailable");
    expect(err.message).not.toContain(forgedIss);
  });

  it("refuses an expired token", async () => {
    const token = await idp.token("ci-bot");
    const later = () => new Date(Date.now() + 2 * 60 * 60 * 1000);
    await expectCode(verifierFor({}, { now: later }).verify(token), "expired");
  });

  it("honours clock skew up to the configured tolerance", async () => {
    const token = await idp.token("ci-bot");
    const exp = (decodeJwt(token).exp as number) * 1000;
    const justAfter = () => new Date(exp + 10_000);
    await expect(verifierFor({ clock_skew_ms: 30_000 }, { now: justAfter }).verify(token)).resolves.toBeTruthy();
    await expectCode(verifierFor({ clock_skew_ms: 0 }, { now: justAfter }).verify(token), "expired");
  });

  it("refuses a token that is not yet valid (nbf)", async () => {
    const token = await idp.token("future-bot");
    expect(decodeJwt(token).nbf).toBe(FUTURE_NBF);
    await expectCode(verifierFor().verify(token), "not_yet_valid");
  });

  it("refuses a forged token: another key, the provider's kid, valid claims", async () => {
    const real = await idp.token("ci-bot");
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const forged = await handMade(decodeProtectedHeader(real), decodeJwt(real), privateKey);
    await expectCode(verifierFor().verify(forged), "bad_signature");
  });

  it("refuses a token whose payload was changed after signing", async () => {
    const real = await idp.token("ci-bot");
    const [h, , s] = real.split(".");
    const payload = base64url.encode(JSON.stringify({ ...decodeJwt(real), groups: ["admin"] }));
    await expectCode(verifierFor().verify(`${h}.${payload}.${s}`), "bad_signature");
  });

  it("refuses alg none before fetching any key", async () => {
    const real = await idp.token("ci-bot");
    const verifier = verifierFor();
    const before = discoveryCount(idp) + jwksCount(idp);
    const unsigned = await handMade({ ...decodeProtectedHeader(real), alg: "none" }, decodeJwt(real));
    await expectCode(verifier.verify(unsigned), "alg_not_allowed");
    expect(discoveryCount(idp) + jwksCount(idp)).toBe(before);
  });

  it("refuses HS256 signed with the provider's public key as the secret", async () => {
    const real = await idp.token("ci-bot");
    const jwk = (await idp.jwks()).keys[0]!;
    const publicKey = createPublicKey({ key: jwk as never, format: "jwk" });
    const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const verifier = verifierFor();
    const before = discoveryCount(idp) + jwksCount(idp);
    for (const secret of [pem, JSON.stringify(jwk)]) {
      const token = await handMade(
        { alg: "HS256", typ: "at+jwt", kid: jwk.kid },
        decodeJwt(real),
        createSecretKey(Buffer.from(secret)),
      );
      await expectCode(verifier.verify(token), "alg_not_allowed");
    }
    expect(discoveryCount(idp) + jwksCount(idp)).toBe(before);
    // sanity: the public key really is the provider's
    await expect(importJWK(jwk, "RS256")).resolves.toBeTruthy();
  });

  it("refuses an algorithm outside the issuer's allowlist", async () => {
    const token = await idp.token("ci-bot");
    await expectCode(verifierFor({ algorithms: ["ES256"] }).verify(token), "alg_not_allowed");
    expect(() => verifierFor({ algorithms: ["HS256"] })).toThrow(/asymmetric/);
  });

  it("refuses a JWT of another type (a logout token) before checking anything else", async () => {
    const real = await idp.token("ci-bot");
    const [, payload, signature] = real.split(".");
    const header = base64url.encode(JSON.stringify({ ...decodeProtectedHeader(real), typ: "logout+jwt" }));
    await expectCode(verifierFor().verify(`${header}.${payload}.${signature}`), "malformed");
  });

  it("fetches discovery and JWKS once, then verifies from cache", async () => {
    const verifier = verifierFor();
    const tokens = await Promise.all([idp.token("ci-bot"), idp.token("ci-bot"), idp.token("deploy-bot")]);
    const discovery0 = discoveryCount(idp);
    const jwks0 = jwksCount(idp);
    // concurrent first verifications share one discovery
    await Promise.all(tokens.map((t) => verifier.verify(t)));
    for (let i = 0; i < 5; i++) for (const t of tokens) await verifier.verify(t);
    // the helper's own discovery calls are not made here; only the verifier's
    expect(discoveryCount(idp) - discovery0).toBe(1);
    expect(jwksCount(idp) - jwks0).toBe(1);
  });
});

describe("issuer availability", () => {
  it("maps an unreachable provider to issuer_unavailable, backs off, then recovers", async () => {
    const idp2 = await startTestProvider({ claims: { "ci-bot": { groups: ["ci"] } } });
    try {
      const token = await idp2.token("ci-bot");
      const verifier = new IdentityVerifier(
        { oidc: [issuerConfig({ issuer: idp2.issuer })], tokens: [] },
        { issuerRetryCooldownMs: 300, fetchTimeoutMs: 2000 },
      );
      await idp2.stop();
      const err = await expectCode(verifier.verify(token), "issuer_unavailable");
      expect(err.message).not.toContain(token);

      await idp2.start();
      // within the cooldown: refused without asking the provider again
      const before = discoveryCount(idp2);
      await expectCode(verifier.verify(token), "issuer_unavailable");
      expect(discoveryCount(idp2)).toBe(before);

      await new Promise((r) => setTimeout(r, 350));
      await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "ci-bot", groups: ["ci"] });
      expect(discoveryCount(idp2)).toBe(before + 1);
    } finally {
      await idp2.stop().catch(() => undefined);
    }
  });

  it("keeps verifying with cached keys while the provider is down", async () => {
    const idp3 = await startTestProvider();
    try {
      const token = await idp3.token("ci-bot");
      const verifier = new IdentityVerifier({ oidc: [issuerConfig({ issuer: idp3.issuer })], tokens: [] });
      await verifier.verify(token);
      await idp3.stop();
      await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "ci-bot" });
    } finally {
      await idp3.stop().catch(() => undefined);
    }
  });

  it("refuses a discovery document that fails, without caching the failure forever", async () => {
    let calls = 0;
    const failingFetch: typeof fetch = async (input, init) => {
      calls++;
      if (calls === 1) return new Response("oops", { status: 500 });
      return fetch(input, init);
    };
    let clock = Date.now();
    const verifier = verifierFor({}, { fetch: failingFetch, now: () => new Date(clock) });
    const token = await idp.token("ci-bot");
    await expectCode(verifier.verify(token), "issuer_unavailable");
    clock += 10_000; // past the default 5 s cooldown
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "ci-bot" });
    expect(calls).toBe(3); // failed discovery, discovery, JWKS
  });
});
