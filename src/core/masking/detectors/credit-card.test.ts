import { describe, expect, it } from "vitest";
import { Masker } from "../masker.js";
import { withLuhn } from "../test-helpers.js";
import { luhnValid, maskCard } from "./credit-card.js";

const m = Masker.from({ detectors: ["credit_card"] });
const mask = (s: string) => m.maskText(s)?.text;

describe("credit_card", () => {
  it("checks Luhn", () => {
    expect(luhnValid("4111111111111111")).toBe(true);
    expect(luhnValid("4111111111111112")).toBe(false);
    expect(luhnValid("378282246310005")).toBe(true);
    expect(luhnValid(withLuhn("520082828282821"))).toBe(true);
  });

  it("masks all but the last four digits, keeping separators", () => {
    expect(mask("4111111111111111")).toBe("************1111");
    expect(mask("pay with 4111 1111 1111 1111 now")).toBe("pay with **** **** **** 1111 now");
    expect(mask("4111-1111-1111-1111")).toBe("****-****-****-1111");
    expect(mask("amex 3782 822463 10005.")).toBe("amex **** ****** *0005.");
    expect(maskCard("5500-0000-0000-0004")).toBe("****-****-****-0004");
  });

  it("finds cards glued to letters but not to digits", () => {
    expect(mask("card:4111111111111111;")).toBe("card:************1111;");
    expect(mask("74111111111111111")).toBeUndefined(); // 17 digits, Luhn-invalid as a whole
  });

  it("leaves Luhn-invalid numbers alone", () => {
    expect(m.maskText("4111 1111 1111 1112")).toBeUndefined();
    expect(m.maskText("order 4111111111111112 shipped")).toBeUndefined();
  });

  it("ignores timestamps, ids and short numbers", () => {
    const ts = withLuhn("171804960000"); // a Luhn-valid 13-digit millisecond timestamp
    expect(luhnValid(ts)).toBe(true);
    expect(m.maskText(`created ${ts}`)).toBeUndefined();
    expect(m.maskText(withLuhn("0411111111111111"))).toBeUndefined();
    expect(m.maskText("2024-06-10 12:30:00 +02")).toBeUndefined();
    expect(m.maskText("12 34 56 78 90 12 34 56")).toBeUndefined(); // not card-shaped groups
    expect(m.maskText("411111111111111111111111")).toBeUndefined(); // 24 digits is no card
    expect(m.maskText("411111111111")).toBeUndefined(); // 12 digits
  });

  it("cuts a card out of a longer grouped run", () => {
    expect(mask("1 4111 1111 1111 1111")).toBe("1 **** **** **** 1111");
    expect(mask("2024-4111-1111-1111-1111")).toBe("2024-****-****-****-1111");
    expect(mask("4111 1111 1111 1111 2024")).toBe("**** **** **** 1111 2024");
  });

  it("masks every card in a value", () => {
    const r = m.maskText("a 4111111111111111 b 5500 0000 0000 0004 c");
    expect(r?.text).toBe("a ************1111 b **** **** **** 0004 c");
    expect(r?.hits).toEqual([{ detector: "credit_card", count: 2 }]);
  });
});
