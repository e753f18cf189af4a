import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Masker } from "./masker.js";
import { groupsOf4, makeIban, withLuhn } from "./test-helpers.js";

const all = Masker.from({ detectors: ["credit_card", "email", "jwt", "private_key", "iban", "aws_key"] });

const digits = (min: number, max: number) =>
  fc.array(fc.integer({ min: 0, max: 9 }), { minLength: min, maxLength: max }).map((a) => a.join(""));

const card = fc.tuple(fc.integer({ min: 2, max: 9 }), digits(11, 17), fc.boolean()).map(([first, rest, grouped]) => {
  const number = withLuhn(`${first}${rest}`);
  return { secret: number, shown: grouped ? groupsOf4(number) : number };
});

const upperAlnum = fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".split(""));
const iban = fc
  .tuple(
    fc.constantFrom("DE", "GB", "FR", "NL", "NO", "CH", "IT", "ES"),
    fc.array(upperAlnum, { minLength: 11, maxLength: 30 }),
    fc.boolean(),
  )
  .map(([cc, bban, grouped]) => {
    const number = makeIban(cc, bban.join(""));
    return { secret: number.slice(2), shown: grouped ? groupsOf4(number) : number };
  });

const word = (chars: string, min: number, max: number) =>
  fc.array(fc.constantFrom(...chars.split("")), { minLength: min, maxLength: max }).map((a) => a.join(""));
const email = fc
  .tuple(
    word("abcdefghijklmnopqrstuvwxyz0123456789_+-", 1, 12),
    fc.array(word("abcdefghijklmnopqrstuvwxyz0123456789", 1, 10), { minLength: 1, maxLength: 3 }),
    word("abcdefghijklmnopqrstuvwxyz", 2, 6),
  )
  .map(([local, labels, tld]) => {
    const address = `${local}@${labels.join(".")}.${tld}`;
    return { secret: address, shown: address };
  });

// An IBAN must stand alone and a card must not touch other digits, so the embedding puts a space on each side.
function embedded(secret: fc.Arbitrary<{ secret: string; shown: string }>) {
  return fc.tuple(fc.string(), secret, fc.string()).map(([before, s, after]) => ({
    secret: s.secret,
    text: `${before} ${s.shown} ${after}`,
  }));
}

describe("property: an embedded secret never survives masking", () => {
  for (const [name, gen] of [
    ["card", card],
    ["iban", iban],
    ["email", email],
  ] as const) {
    it(name, () => {
      fc.assert(
        fc.property(embedded(gen), ({ secret, text }) => {
          const r = all.maskText(text);
          expect(r).toBeDefined();
          expect(r!.text.replace(/[ -]/g, "")).not.toContain(secret);
          const b = all.maskBytes(Buffer.from(text));
          expect(b!.bytes.toString()).toBe(r!.text);
        }),
        { numRuns: 500 },
      );
    });
  }

  it("email glued to arbitrary text", () => {
    fc.assert(
      fc.property(fc.string(), email, fc.string(), (before, e, after) => {
        const r = all.maskText(before + e.shown + after);
        expect(r).toBeDefined();
        expect(r!.text).not.toContain(e.secret);
      }),
      { numRuns: 500 },
    );
  });
});

describe("property: text without digits, @ or ----- is left alone", () => {
  it("returns undefined", () => {
    const clean = fc
      .oneof(
        fc.string({ unit: fc.constantFrom(..."abcXYZ eyJ .,;:!?_+/=-\n\t'\"()é日😀".split("")) }),
        fc.string({ unit: "binary" }),
      )
      .map((s) => s.replace(/[0-9@]/g, "").replace(/-{5,}/g, "-"));
    fc.assert(
      fc.property(clean, (s) => {
        expect(all.maskText(s)).toBeUndefined();
        expect(all.maskBytes(Buffer.from(s))).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });
});
