import { describe, expect, it } from "vitest";
import { Masker } from "../masker.js";
import { makeIban } from "../test-helpers.js";
import { ibanValid } from "./iban.js";

const m = Masker.from({ detectors: ["iban"] });
const mask = (s: string) => m.maskText(s)?.text;

describe("iban", () => {
  it("validates by mod 97", () => {
    expect(ibanValid("DE89370400440532013000")).toBe(true);
    expect(ibanValid("GB82WEST12345698765432")).toBe(true);
    expect(ibanValid("NO9386011117947")).toBe(true);
    expect(ibanValid("GB82WEST12345698765433")).toBe(false);
    expect(ibanValid("DE88370400440532013000")).toBe(false);
    expect(ibanValid(makeIban("FR", "20041010050500013M02606"))).toBe(true);
  });

  it("masks electronic and print forms, keeping the country code and grouping", () => {
    expect(mask("DE89370400440532013000")).toBe("DE********************");
    expect(mask("pay to DE89 3704 0044 0532 0130 00, thanks")).toBe("pay to DE** **** **** **** **** **, thanks");
    expect(mask("NO93 8601 1117 947")).toBe("NO** **** **** ***");
    expect(mask("iban: gb82west12345698765432")).toBe("iban: gb********************");
  });

  it("does not swallow a following word", () => {
    expect(mask("DE89 3704 0044 0532 0130 00 KEYS")).toBe("DE** **** **** **** **** ** KEYS");
    const fourMultiple = makeIban("DE", "3704004405320130"); // 20 characters: ends on a full group
    expect(fourMultiple.length).toBe(20);
    const spaced = fourMultiple.replace(/(.{4})(?=.)/g, "$1 ");
    expect(mask(`${spaced} TEXT more`)).toBe(`DE** **** **** **** **** TEXT more`);
  });

  it("finds an IBAN after a group that only looked like one", () => {
    expect(mask("AB12 DE89 3704 0044 0532 0130 00")).toBe("AB12 DE** **** **** **** **** **");
  });

  it("leaves invalid checksums and glued text alone", () => {
    expect(m.maskText("DE88 3704 0044 0532 0130 00")).toBeUndefined();
    expect(m.maskText("GB82WEST12345698765433")).toBeUndefined();
    expect(m.maskText("XDE89370400440532013000")).toBeUndefined();
    expect(m.maskText("AB12 is not an IBAN, nor is AB12CDEF")).toBeUndefined();
  });
});
