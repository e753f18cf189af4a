import { describe, expect, it } from "vitest";
import { COLUMN_MASK, Masker } from "./index.js";
import { b64url } from "./test-helpers.js";

const ALL = ["credit_card", "email", "jwt", "private_key", "iban", "aws_key"] as const;
const all = Masker.from({ detectors: [...ALL] });

describe("Masker", () => {
  it("reports what is configured", () => {
    const none = Masker.from(undefined);
    expect([none.enabled, none.hasColumnRules, none.hasDetectors]).toEqual([false, false, false]);
    expect(none.maskText("bob@example.com")).toBeUndefined();
    expect(none.maskBytes(Buffer.from("bob@example.com"))).toBeUndefined();
    const empty = Masker.from({ columns: [], detectors: [] });
    expect(empty.enabled).toBe(false);
    expect([all.enabled, all.hasColumnRules, all.hasDetectors]).toEqual([true, false, true]);
    expect(COLUMN_MASK).toBe("********");
  });

  it("returns undefined on clean input", () => {
    for (const clean of [
      "",
      "x",
      "hello world",
      "2024-06-10T12:30:00Z",
      "123456",
      "a.b.c",
      "eyes.are.blue",
      "-----BEGIN CERTIFICATE-----",
      "SELECT * FROM t WHERE id = 12345678",
      "UUID 7f9c2ba4-e88f-4c7e-9d1a-3b6f5e2c1d0a",
    ])
      expect(all.maskText(clean), clean).toBeUndefined();
  });

  it("only runs the detectors that are enabled", () => {
    const cardOnly = Masker.from({ detectors: ["credit_card"] });
    expect(cardOnly.maskText("bob@example.com 4111111111111111")?.text).toBe("bob@example.com ************1111");
  });

  it("masks mixed hits in one value and counts them per detector", () => {
    const token = `${b64url({ alg: "HS256" })}.${b64url({ sub: "u" })}.c2ln`;
    const r = all.maskText(`u=bob@example.com card=4111111111111111 t=${token} k=AKIAIOSFODNN7EXAMPLE e=x@y.io`);
    expect(r?.text).toBe(
      `u=****@**** card=************1111 t=${b64url({ alg: "HS256" })}.********.******** k=AKIA**************** e=****@****`,
    );
    expect(r?.hits).toEqual([
      { detector: "email", count: 2 },
      { detector: "credit_card", count: 1 },
      { detector: "jwt", count: 1 },
      { detector: "aws_key", count: 1 },
    ]);
  });

  it("settles overlaps deterministically: the wider, earlier hit wins", () => {
    // A private key block containing an email and a card number is masked once, as a key.
    const text = "-----BEGIN PRIVATE KEY-----\nbob@example.com 4111111111111111\n-----END PRIVATE KEY-----";
    expect(all.maskText(text)).toEqual({
      text: "-----BEGIN PRIVATE KEY-----\n********\n-----END PRIVATE KEY-----",
      hits: [{ detector: "private_key", count: 1 }],
    });
    // An IBAN whose digits also form a card-shaped group is masked as an IBAN only.
    expect(all.maskText("DE89 3704 0044 0532 0130 00")?.hits).toEqual([{ detector: "iban", count: 1 }]);
    // The same input gives the same output every time.
    const mixed = "AB12 DE89 3704 0044 0532 0130 00 bob@example.com 5500 0000 0000 0004";
    expect(all.maskText(mixed)).toEqual(all.maskText(mixed));
  });

  it("masks UTF-8 bytes with multi-byte characters around a hit", () => {
    const input = "café ☕ 4111 1111 1111 1111 — 😀 bob@example.com ü";
    const r = all.maskBytes(Buffer.from(input, "utf8"));
    expect(r?.bytes.toString("utf8")).toBe("café ☕ **** **** **** 1111 — 😀 ****@**** ü");
    expect(r?.hits).toEqual([
      { detector: "credit_card", count: 1 },
      { detector: "email", count: 1 },
    ]);
    // Same result as the text path.
    expect(r?.bytes.toString("utf8")).toBe(all.maskText(input)?.text);
  });

  it("masks bytes without touching invalid UTF-8 elsewhere in the value", () => {
    const bad = Buffer.from([0xff, 0xfe, 0x20]);
    const input = Buffer.concat([bad, Buffer.from("4111111111111111 "), bad]);
    const r = all.maskBytes(input);
    expect(r?.bytes).toEqual(Buffer.concat([bad, Buffer.from("************1111 "), bad]));
  });

  it("treats non-ASCII letters next to an address as part of it, in text and bytes alike", () => {
    const input = "→josé@exämple.com←";
    expect(all.maskText(input)?.text).toBe("****@****");
    expect(all.maskBytes(Buffer.from(input))?.bytes.toString()).toBe("****@****");
  });

  it("returns undefined for clean bytes", () => {
    expect(all.maskBytes(Buffer.from("naïve café — 日本語 2024-06-10"))).toBeUndefined();
    expect(all.maskBytes(Buffer.alloc(0))).toBeUndefined();
  });
});
