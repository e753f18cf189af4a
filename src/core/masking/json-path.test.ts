import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkJsonPathPattern } from "../policy/patterns.js";
import { compileJsonPaths, formatJsonPathStep, JsonPathError, parseJsonPath } from "./json-path.js";

describe("parseJsonPath", () => {
  it("reads every step form", () => {
    expect(parseJsonPath(`$.users[*].email`)).toEqual([
      { kind: "name", name: "users", descendant: false },
      { kind: "wildcard", descendant: false },
      { kind: "name", name: "email", descendant: false },
    ]);
    expect(parseJsonPath(`$..password`)).toEqual([{ kind: "name", name: "password", descendant: true }]);
    expect(parseJsonPath(`$.data["api-key"]['x.y'][12].*..*`)).toEqual([
      { kind: "name", name: "data", descendant: false },
      { kind: "name", name: "api-key", descendant: false },
      { kind: "name", name: "x.y", descendant: false },
      { kind: "index", index: 12 },
      { kind: "wildcard", descendant: false },
      { kind: "wildcard", descendant: true },
    ]);
    expect(parseJsonPath(`$.$ref._a-b`)).toEqual([
      { kind: "name", name: "$ref", descendant: false },
      { kind: "name", name: "_a-b", descendant: false },
    ]);
  });

  it("decodes escapes in quoted names", () => {
    expect(parseJsonPath(String.raw`$["a\"b"]['c\'d']["\\\/\n\t\u00e9"]`)).toEqual([
      { kind: "name", name: 'a"b', descendant: false },
      { kind: "name", name: "c'd", descendant: false },
      { kind: "name", name: "\\/\n\té", descendant: false },
    ]);
    expect(parseJsonPath(`$["it's"]`)).toEqual([{ kind: "name", name: "it's", descendant: false }]);
  });

  it.each([
    ["", /starts with \$/],
    ["users", /starts with \$/],
    ["$", /at least one step/],
    ["$.", /expected a name/],
    ["$..", /expected a name/],
    ["$...a", /expected a name/],
    ["$.1abc", /expected a name/],
    ["$[", /expected \*, an index/],
    ["$[-1]", /expected \*, an index/],
    ["$[1", /expected "\]"/],
    ["$['a]", /unterminated/],
    [String.raw`$["a\q"]`, /unknown escape/],
    [String.raw`$["\u12"]`, /unknown escape/],
    ["$[99999999999999999999]", /too large/],
    ["$.a b", /expected "\.", "\.\." or "\["/],
    ["$..[0]", /expected a name/],
  ])("refuses %s", (path, message) => {
    expect(() => parseJsonPath(path)).toThrow(JsonPathError);
    expect(() => parseJsonPath(path)).toThrow(message);
  });

  it("compileJsonPaths names the bad path", () => {
    expect(() => compileJsonPaths(["$.ok", "$.bad["])).toThrow(/invalid JSON path "\$\.bad\[": /);
  });

  it("the config check is the same parser", () => {
    expect(checkJsonPathPattern("$.users[*].email")).toBeUndefined();
    expect(checkJsonPathPattern("$..password")).toBeUndefined();
    expect(checkJsonPathPattern(`$.data["api-key"]`)).toBeUndefined();
    expect(checkJsonPathPattern("$.a[")).toMatch(
      /^invalid JSON path "\$\.a\[": expected \*, an index .* at offset 4 \(expected e\.g\./,
    );
    expect(checkJsonPathPattern(String.raw`$["a\q"]`)).toMatch(/unknown escape/);
  });

  it("property: a formatted path reads back as the same keys", () => {
    const key = fc.oneof(fc.string({ unit: "binary" }), fc.nat(1000));
    fc.assert(
      fc.property(fc.array(key, { minLength: 1, maxLength: 6 }), (keys) => {
        const path = "$" + keys.map(formatJsonPathStep).join("");
        const steps = parseJsonPath(path);
        expect(steps).toEqual(
          keys.map((k) =>
            typeof k === "number" ? { kind: "index", index: k } : { kind: "name", name: k, descendant: false },
          ),
        );
        expect(checkJsonPathPattern(path)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });
});

describe("JsonPathSet.advance", () => {
  // walks keys from the root and says whether the node they lead to is masked (itself or inside a masked node)
  function matches(paths: string[], keys: (string | number)[]): boolean {
    const set = compileJsonPaths(paths);
    let states = set.start();
    for (let i = 0; i < keys.length; i++) {
      const r = set.advance(states, keys[i] as string | number);
      if (r === null) return true; // masked here or, as a whole, above
      states = r;
    }
    return false;
  }

  it.each([
    [["$.a.b"], ["a", "b"], true],
    [["$.a.b"], ["a", "c"], false],
    [["$.a.b"], ["a"], false],
    [["$.a[0]"], ["a", 0], true],
    [["$.a[0]"], ["a", "0"], false], // an index selects array elements only
    [["$.a[*]"], ["a", "x"], true], // * selects object members too
    [["$.a.*"], ["a", 3], true],
    [["$..password"], ["password"], true],
    [["$..password"], ["x", 0, "y", "password"], true],
    [["$..password"], ["x", "passwords"], false],
    [["$..a.b"], ["x", "a", "b"], true],
    [["$..a.b"], ["x", "a", "c", "b"], false],
    [["$..a..b"], ["a", "x", "y", "b"], true],
    [["$..*"], ["any", 1], true],
    [["$.x", "$..y"], ["q", "y"], true],
    [['$["a.b"]'], ["a.b"], true],
    [['$["a.b"]'], ["a", "b"], false],
  ] as [string[], (string | number)[], boolean][])("%j at %j: %s", (paths, keys, expected) => {
    expect(matches(paths, keys)).toBe(expected);
  });

  it("keeps the same state array when only .. steps carry over", () => {
    const set = compileJsonPaths(["$..password"]);
    const s = set.start();
    expect(set.advance(s, "other")).toBe(s);
  });
});
