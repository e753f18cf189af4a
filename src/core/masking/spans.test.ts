import { describe, expect, it } from "vitest";
import type { Span } from "./detectors/index.js";
import { applyToBytes, applyToString, hitsOf, resolve } from "./spans.js";

const span = (start: number, end: number, detector: Span["detector"], replacement = "#"): Span => ({
  start,
  end,
  replacement,
  detector,
});

describe("resolve", () => {
  it("drops a hit inside another and masks the part of a hit that sticks out", () => {
    const spans = resolve([span(5, 15, "email"), span(0, 10, "credit_card"), span(2, 4, "iban")]);
    expect(spans).toEqual([span(0, 10, "credit_card"), span(10, 15, "email", "********")]);
    expect(applyToString("0123456789abcdefg", spans)).toBe("#********fg");
    expect(hitsOf(spans)).toEqual([
      { detector: "credit_card", count: 1 },
      { detector: "email", count: 1 },
    ]);
  });

  it("breaks ties by length, then by detector precedence, whatever the input order", () => {
    const a = [span(0, 5, "email", "E"), span(0, 5, "jwt", "J"), span(0, 3, "private_key", "P")];
    const b = [...a].reverse();
    expect(resolve(a)).toEqual([span(0, 5, "jwt", "J")]);
    expect(resolve(b)).toEqual([span(0, 5, "jwt", "J")]);
  });

  it("applies to bytes by byte offset", () => {
    expect(applyToBytes(Buffer.from("ab-cd-ef"), [span(3, 5, "email", "**")]).toString()).toBe("ab-**-ef");
  });
});
