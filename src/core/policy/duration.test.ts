import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "./duration.js";

describe("durations", () => {
  it("parses units and compounds to milliseconds", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("2h")).toBe(7_200_000);
    expect(parseDuration("400d")).toBe(400 * 86_400_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("0")).toBe(0);
    expect(parseDuration(0)).toBe(0);
  });

  it("rejects numbers without a unit and garbage", () => {
    expect(parseDuration(30)).toEqual({ error: expect.stringContaining("needs a unit") });
    expect(parseDuration("5x")).toEqual({ error: expect.stringContaining('invalid duration "5x"') });
    expect(parseDuration("-5m")).toHaveProperty("error");
    expect(parseDuration("")).toHaveProperty("error");
  });

  it("formats back to the shortest exact form", () => {
    expect(formatDuration(300_000)).toBe("5m");
    expect(formatDuration(5_400_000)).toBe("1h30m");
    expect(formatDuration(0)).toBe("0");
    expect(formatDuration(400 * 86_400_000)).toBe("400d");
  });
});
