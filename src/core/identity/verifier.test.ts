/** Unit tests with an in-memory issuer (fetch stub); the real-provider tests live in test/identity. */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { exportJWK, SignJWT, type JWTPayload } from "jose";
import { describe, expect, it } from "vitest";
import type { OidcIssuerConfig, StaticTokenConfig } from "./config.js";
import { AuthError, type AuthErrorCode } from "./errors.js";
import { GatewayTokenIssuer } from "./gateway-tokens.js";
import { generateStaticToken, sha256Hex } from "./static-tokens.js";
import { IdentityVerifier, type IdentityVerifierOptions } from "./verifier.js";

const ISSUER = "https://idp.test";
const es = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ed = generateKeyPairSync("ed25519");

async function fakeIdp() {
  const keys = [
    { ...(await exportJWK(es.publicKey)), kid: "es", alg: "ES256", use: "sig" },
    { ...(await exportJWK(ed.publicKey)), kid: "ed", alg: "EdDSA", use: "sig" },
  ];
  const calls: string[] = [];
  const fetchStub: typeof fetch = async (input) => {
    const url = String(input);
    calls.push(url);
    if (url === `${ISSUER}/.well-known/openid-configuration`) {
      return Response.json({ issuer: ISSUER, jwks_uri: `${ISSUER}/keys` });
    }
    if (url === `${ISSUER}/keys`) return Response.json({ keys });
    return new Response("not found", { status: 404 });
  };
  return { fetch: fetchStub, calls };
}

function config(overrides: Partial<OidcIssuerConfig> = {}): OidcIssuerConfig {
  return {
    issuer: ISSUER,
    audience: "gatehouse",
    groups_claim: "groups",
    subject_claim: "sub",
    kind: "auto",
    clock_skew_ms: 30_000,
    ...overrides,
  };
}

async function sign(claims: JWTPayload, key: KeyObject = es.privateKey, header = { alg: "ES256", kid: "es" }) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: ISSUER, aud: "gatehouse", sub: "svc", iat: now, exp: now + 300, ...claims })
    .setProtectedHeader(header)
    .sign(key);
}

async function verifier(
  overrides: Partial<OidcIssuerConfig> = {},
  tokens: StaticTokenConfig[] = [],
  options: IdentityVerifierOptions = {},
) {
  const idp = await fakeIdp();
  return new IdentityVerifier({ oidc: [config(overrides)], tokens }, { fetch: idp.fetch, ...options });
}

async function expectCode(promise: Promise<unknown>, code: AuthErrorCode) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  expect((err as AuthError).code, (err as AuthError).message).toBe(code);
}

describe("IdentityVerifier: OIDC claims", () => {
  it("requires exp and the subject claim", async () => {
    const v = await verifier();
    await expectCode(v.verify(await sign({ exp: undefined })), "missing_claim");
    await expectCode(v.verify(await sign({ sub: undefined })), "missing_claim");
    await expectCode(v.verify(await sign({ iss: undefined })), "missing_claim");
  });

  it("verifies EdDSA and ES256, refuses a key that does not match the kid", async () => {
    const v = await verifier();
    await expect(v.verify(await sign({}, ed.privateKey, { alg: "EdDSA", kid: "ed" }))).resolves.toBeTruthy();
    await expect(v.verify(await sign({}))).resolves.toBeTruthy();
    await expectCode(v.verify(await sign({}, ed.privateKey, { alg: "EdDSA", kid: "unknown" })), "bad_signature");
  });

  it("infers kind: bot for client credentials or no person claims, human otherwise", async () => {
    const v = await verifier();
    const kind = async (claims: JWTPayload) => (await v.verify(await sign(claims))).kind;
    expect(await kind({ sub: "svc", client_id: "svc", email: "x@example.com" })).toBe("bot");
    expect(await kind({ sub: "svc", azp: "svc" })).toBe("bot");
    expect(await kind({ sub: "u-1", azp: "web-app" })).toBe("bot");
    expect(await kind({ sub: "u-1", azp: "web-app", preferred_username: "alice" })).toBe("human");
    expect(await kind({ sub: "u-1", email: "alice@example.com" })).toBe("human");
  });

  it("reads nested group claims and falls back to a hash prefix for tokenId", async () => {
    const v = await verifier({ groups_claim: "realm_access.roles" });
    const token = await sign({ realm_access: { roles: ["dba", 7, "ci"] } });
    const identity = await v.verify(token);
    expect(identity.groups).toEqual(["dba", "ci"]);
    expect(identity.tokenId).toBe("sha256:" + sha256Hex(token).slice(0, 16));
    await expect((await verifier()).verify(await sign({ jti: "abc" }))).resolves.toMatchObject({
      groups: [],
      tokenId: "abc",
    });
    await expectCode(v.verify(await sign({ realm_access: { roles: { a: 1 } } })), "malformed");
  });

  it("refuses malformed input with a message that never echoes the token", async () => {
    const v = await verifier();
    for (const bad of ["", "a.b.c", "x".repeat(20_000), "abc\u0000def", "eyJ.eyJ.sig.extra.part"]) {
      const err = await v.verify(bad).catch((e: unknown) => e as AuthError);
      expect(err).toBeInstanceOf(AuthError);
      expect(["malformed", "unknown_token"]).toContain((err as AuthError).code);
      if (bad.length > 3) expect((err as AuthError).message).not.toContain(bad);
    }
  });

  it("refuses a discovery document for another issuer", async () => {
    const lying: typeof fetch = async () => Response.json({ issuer: "https://evil.test", jwks_uri: `${ISSUER}/keys` });
    const v = new IdentityVerifier({ oidc: [config()], tokens: [] }, { fetch: lying });
    await expectCode(v.verify(await sign({})), "issuer_unavailable");
  });

  it("refuses unsafe configuration at construction", () => {
    const make = (o: Partial<OidcIssuerConfig>) => () => new IdentityVerifier({ oidc: [config(o)], tokens: [] });
    expect(make({ issuer: "http://idp.example.com" })).toThrow(/https/);
    expect(make({ algorithms: ["none"] })).toThrow(/asymmetric/);
    expect(make({ clock_skew_ms: 600_000 })).toThrow(/clock_skew_ms/);
    expect(make({ issuer: "gatehouse" })).toThrow(/reserved/);
    expect(make({ issuer: "http://127.0.0.1:9" })).not.toThrow();
  });
});

describe("IdentityVerifier: static tokens", () => {
  const { token, sha256 } = generateStaticToken();
  const entry: StaticTokenConfig = { name: "ci-bot", sha256, groups: ["ci"], kind: "bot" };

  it("mints recognisable tokens", () => {
    expect(token).toMatch(/^gth_[A-Za-z0-9_-]{43}$/);
    expect(sha256).toBe(sha256Hex(token));
  });

  it("accepts the right token and refuses others", async () => {
    const v = new IdentityVerifier({ oidc: [], tokens: [entry] });
    await expect(v.verify(token)).resolves.toEqual({
      subject: "ci-bot",
      kind: "bot",
      groups: ["ci"],
      issuer: "gatehouse",
      tokenId: "ci-bot",
    });
    await expectCode(v.verify(token.slice(0, -1) + (token.endsWith("A") ? "B" : "A")), "unknown_token");
    await expectCode(v.verify(generateStaticToken().token), "unknown_token");
  });

  it("accepts any string as a static token, not only gth_ ones", async () => {
    const legacy = "legacy secret with spaces";
    const v = new IdentityVerifier({ oidc: [], tokens: [{ ...entry, sha256: sha256Hex(legacy) }] });
    await expect(v.verify(legacy)).resolves.toMatchObject({ subject: "ci-bot" });
  });

  it("honours expires", async () => {
    const expires = "2030-01-01T00:00:00Z";
    const at = (iso: string) =>
      new IdentityVerifier({ oidc: [], tokens: [{ ...entry, expires }] }, { now: () => new Date(iso) });
    await expect(at("2029-12-31T23:59:59Z").verify(token)).resolves.toMatchObject({ expiresAt: new Date(expires) });
    await expectCode(at("2030-01-01T00:00:00Z").verify(token), "expired");
  });

  it("compares the token's hash with every configured hash, full length, without early exit", async () => {
    const others = Array.from({ length: 4 }, (_, i) => ({
      ...entry,
      name: `t${i}`,
      sha256: generateStaticToken().sha256,
    }));
    // a hash sharing a long prefix with the real one must not match either
    const nearMiss = { ...entry, name: "near", sha256: sha256.slice(0, 62) + (sha256.endsWith("0") ? "11" : "00") };
    const seen: Array<[number, number]> = [];
    const equals = (a: Buffer, b: Buffer) => {
      seen.push([a.length, b.length]);
      return a.equals(b);
    };
    const v = new IdentityVerifier({ oidc: [], tokens: [entry, nearMiss, ...others] }, { staticTokenEquals: equals });
    await expect(v.verify(token)).resolves.toMatchObject({ subject: "ci-bot" });
    expect(seen).toHaveLength(6); // matched first, still compared all
    expect(seen.every(([a, b]) => a === 32 && b === 32)).toBe(true);
    seen.length = 0;
    await expectCode(v.verify("gth_" + "A".repeat(43)), "unknown_token");
    expect(seen).toHaveLength(6);
  });

  it("refuses bad token configuration", () => {
    expect(() => new IdentityVerifier({ oidc: [], tokens: [{ ...entry, sha256: "ABC" }] })).toThrow(/64 lowercase hex/);
    expect(() => new IdentityVerifier({ oidc: [], tokens: [entry, { ...entry, name: "dup" }] })).toThrow(/twice/);
  });
});

describe("IdentityVerifier: gateway-minted tokens", () => {
  const issuer = new GatewayTokenIssuer(generateKeyPairSync("ed25519").privateKey);

  it("verifies a minted token only when the gateway issuer is configured", async () => {
    const minted = await issuer.mint({ subject: "alice", groups: ["dba"], kind: "human", ttlMs: 60_000 });
    const v = new IdentityVerifier({ oidc: [], tokens: [] }, { gatewayIssuer: { publicKey: issuer.publicKey } });
    await expect(v.verify(minted.token)).resolves.toEqual({
      subject: "alice",
      kind: "human",
      groups: ["dba"],
      issuer: "gatehouse",
      tokenId: minted.jti,
      expiresAt: minted.expiresAt,
    });
    await expectCode(new IdentityVerifier({ oidc: [], tokens: [] }).verify(minted.token), "wrong_issuer");
  });

  it("refuses tampered, foreign-key and expired gateway tokens", async () => {
    const v = new IdentityVerifier({ oidc: [], tokens: [] }, { gatewayIssuer: { publicKey: issuer.publicKey } });
    const { token } = await issuer.mint({ subject: "bot-1", groups: ["ci"] });
    const [h, p, s] = token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, groups: ["admin"] })).toString("base64url")}.${s}`;
    await expectCode(v.verify(tampered), "bad_signature");
    const foreign = await new GatewayTokenIssuer(generateKeyPairSync("ed25519").privateKey).mint({ subject: "bot-1" });
    await expectCode(v.verify(foreign.token), "bad_signature");
    const later = new IdentityVerifier(
      { oidc: [], tokens: [] },
      { gatewayIssuer: { publicKey: issuer.publicKey }, now: () => new Date(Date.now() + 2 * 3600_000) },
    );
    await expectCode(later.verify(token), "expired");
  });

  it("caps the lifetime", async () => {
    await expect(issuer.mint({ subject: "x", ttlMs: 25 * 3600_000 })).rejects.toThrow(RangeError);
    const { expiresAt } = await issuer.mint({ subject: "x" });
    expect(Math.abs(expiresAt.getTime() - Date.now() - 3600_000)).toBeLessThan(2000);
  });
});
