import { describe, expect, it } from "vitest";
import { canonicalHash, canonicalJson, toJsonValue } from "../../src/core/evidence/canonical.js";

describe("canonical JSON", () => {
  it("sorts keys recursively, omits undefined members and has no whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x" }, u: undefined })).toBe(
      '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });
  it("sorts by UTF-16 code units and escapes like JSON.stringify", () => {
    expect(canonicalJson({ é: 1, Z: 2, a: 3, "\u{1F600}": 4, "\n": '\u2028"' })).toBe(
      '{"\\n":"\u2028\\"","Z":2,"a":3,"é":1,"\u{1F600}":4}',
    );
  });
  it("serialises numbers the shortest round-trip way", () => {
    expect(canonicalJson([1e21, 0.1, -0, 1.5e-7, 100])).toBe("[1e+21,0.1,0,1.5e-7,100]");
  });
  it("rejects what is not JSON data", () => {
    expect(() => canonicalJson({ a: NaN })).toThrow(TypeError);
    expect(() => canonicalJson({ a: new Date(0) })).toThrow(TypeError);
    expect(() => canonicalJson(1n)).toThrow(TypeError);
  });
  it("normalises values the way JSON.stringify does before hashing", () => {
    const v = toJsonValue({ d: new Date(0), a: [undefined, NaN], u: undefined });
    expect(v).toEqual({ d: "1970-01-01T00:00:00.000Z", a: [null, null] });
    expect(canonicalHash(v)).toMatch(/^[0-9a-f]{64}$/);
  });
});
