import { describe, expect, it } from "vitest";
import { Masker } from "../masker.js";
import { b64url } from "../test-helpers.js";
import { isJoseHeader } from "./jwt.js";

const m = Masker.from({ detectors: ["jwt"] });
const header = b64url({ alg: "RS256", typ: "JWT", kid: "k1" });
const token = `${header}.${b64url({ sub: "alice", email: "alice@example.com" })}.${b64url("signature-bytes")}`;

describe("jwt", () => {
  it("masks claims and signature, keeps the header", () => {
    const r = m.maskText(`Authorization: Bearer ${token}\n`);
    expect(r?.text).toBe(`Authorization: Bearer ${header}.********.********\n`);
    expect(r?.hits).toEqual([{ detector: "jwt", count: 1 }]);
  });

  it("masks unsigned (alg none) and JWE tokens", () => {
    const none = `${b64url({ alg: "none" })}.${b64url({ sub: "x" })}.`;
    expect(m.maskText(`t=${none} `)?.text).toBe(`t=${b64url({ alg: "none" })}.********.******** `);
    const jweHeader = b64url({ alg: "RSA-OAEP", enc: "A256GCM" });
    const jwe = `${jweHeader}.${b64url("key")}.${b64url("iv")}.${b64url("ciphertext")}.${b64url("tag")}`;
    expect(m.maskText(jwe)?.text).toBe(`${jweHeader}${".********".repeat(4)}`);
  });

  it("accepts a header with whitespace after the brace", () => {
    const spaced = b64url('{ "alg": "HS256" }');
    const pretty = b64url('{\n  "alg": "HS256"\n}');
    expect(m.maskText(`${spaced}.${b64url("{}")}.abc`)).toBeDefined();
    expect(m.maskText(`${pretty}.${b64url("{}")}.abc`)).toBeDefined();
  });

  it("leaves dotted text that is not a JWT alone", () => {
    expect(m.maskText("version 1.2.3, host a.b.example.com")).toBeUndefined();
    expect(m.maskText(`eyJub3QgaGVhZGVyIn0x.foo.bar`)).toBeUndefined(); // base64 of non-JSON
    expect(m.maskText(`${b64url({ typ: "JWT" })}.${b64url({ sub: 1 })}.sig`)).toBeUndefined(); // no alg
    expect(m.maskText(`${b64url([1, 2, 3, 4, 5, 6, 7, 8, 9])}.eyJ4IjoxfQ.sig`)).toBeUndefined(); // not an object
    expect(m.maskText(`${header}..sig`)).toBeUndefined(); // no payload
    expect(m.maskText(`x${token}`)).toBeUndefined(); // glued to other base64url
    expect(isJoseHeader("e")).toBe(false);
  });

  it("masks several tokens", () => {
    expect(m.maskText(`${token} and ${token}`)?.hits).toEqual([{ detector: "jwt", count: 2 }]);
  });
});
