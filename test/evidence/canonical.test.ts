import { describe, expect, it } from "vitest";
import { canonicalHash, canonicalize, canonicalJson, RawJson, toJsonValue } from "../../src/core/evidence/canonical.js";

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
  it("canonicalize orders keys as sort() does, whatever order and however many (insertion sort up to 16)", () => {
    const pool = [
      "text",
      "message",
      "kinds",
      "decision",
      "a",
      "B",
      "é",
      "\u{1F600}",
      "\uffff",
      "",
      "10",
      "9",
      "_",
      "z",
    ];
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let n = 0; n <= 30; n++) {
      for (let round = 0; round < 20; round++) {
        const keys = Array.from({ length: n }, (_, i) => pool[i] ?? `k${Math.floor(random() * 1000)}-${i}`);
        for (let i = keys.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [keys[i], keys[j]] = [keys[j]!, keys[i]!];
        }
        const obj = Object.fromEntries(keys.map((k, i) => [k, i]));
        const sorted = Object.keys(obj).sort();
        expect(canonicalize(obj)).toBe(`{${sorted.map((k) => `${JSON.stringify(k)}:${obj[k]}`).join(",")}}`);
      }
    }
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
  it("canonicalize equals canonicalJson(toJsonValue(v)) in one pass, odd inputs included", () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y?: number,
      ) {}
    }
    const sparse: unknown[] = [1];
    sparse[3] = "x";
    let deep: unknown = { leaf: [1, { z: undefined, a: null }] };
    for (let i = 0; i < 100; i++) deep = { [`k${i % 3}`]: deep, n: i };
    const inputs: unknown[] = [
      { b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x" }, u: undefined },
      { é: 1, Z: 2, a: 3, "\u{1F600}": 4, "\n": '\u2028"', lone: "\ud800" },
      [1e21, 0.1, -0, 1.5e-7, 100, NaN, Infinity, -Infinity],
      { d: new Date(0), a: [undefined, NaN, () => 1, Symbol("s")], u: undefined, f: () => 1 },
      { toJSON: (k: string) => ({ key: k, z: 1, a: 2 }) },
      { nested: { toJSON: () => [3, 2, 1] } },
      [new Number(3), new String("s"), new Boolean(false)],
      new Point(1),
      { p: new Point(2, 3), m: new Map([[1, 2]]), s: new Set([1]), buf: Buffer.from("hi") },
      Object.assign(Object.create(null) as object, { b: 2, a: 1 }),
      { 10: "a", 2: "b", "1a": "c", "": "d" },
      // already in order (no sort), with member names that need escaping (quoted once, then reused)
      { '"q': 1, a: { "\\": 2, b: [{ '"q': 3 }] }, "a\u0000": 4 },
      sparse,
      deep,
      "text",
      42,
      null,
      true,
      undefined,
      () => 1,
    ];
    for (const v of inputs) {
      const plain = toJsonValue(v);
      expect(canonicalize(v)).toBe(plain === undefined ? undefined : canonicalJson(plain));
    }
  });
  it("canonicalize refuses what JSON.stringify refuses", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(() => canonicalize(cyclic)).toThrow(TypeError);
    expect(() => canonicalize({ n: 1n })).toThrow(TypeError);
  });
  it("splices RawJson verbatim, so a pre-encoded part hashes like the value it encodes", () => {
    const data = { z: [1, "two"], a: { y: null } };
    const text = canonicalize(data) ?? "";
    expect(canonicalJson({ seq: 1, data: new RawJson(text) })).toBe(canonicalJson({ seq: 1, data }));
  });
});
