import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hasDuplicateKeys } from "./json-keys.js";
import { compileJsonPaths, JsonMaskError, maskJson, maskJsonText, MAX_JSON_DEPTH } from "./json-mask.js";
import { formatJsonPathStep } from "./json-path.js";
import { COLUMN_MASK, Masker } from "./masker.js";
import { EMAIL_MASK } from "./detectors/email.js";

const detectors = Masker.from({ detectors: ["email", "jwt", "aws_key", "credit_card"] });
const paths = (...p: string[]) => compileJsonPaths(p);

describe("maskJson by path", () => {
  const doc = {
    users: [
      { name: "ann", email: "ann@example.com", age: 41, admin: true, card: { number: "4111111111111111" } },
      { name: "bob", email: null, age: 7, admin: false, card: null },
    ],
    meta: { password: "hunter2", nested: { password: ["a", "b"] } },
  };

  it("replaces strings and containers with the mask, numbers and booleans with null", () => {
    const r = maskJson(doc, {
      paths: paths("$.users[*].email", "$.users[*].age", "$.users[0].admin", "$.users[*].card"),
    });
    expect(r.value).toEqual({
      users: [
        { name: "ann", email: COLUMN_MASK, age: null, admin: null, card: COLUMN_MASK },
        { name: "bob", email: null, age: null, admin: false, card: null },
      ],
      meta: doc.meta,
    });
    expect(r.hits).toEqual([
      { path: "$.users[0].email", kind: "path" },
      { path: "$.users[0].age", kind: "path" },
      { path: "$.users[0].admin", kind: "path" },
      { path: "$.users[0].card", kind: "path" },
      { path: "$.users[1].age", kind: "path" },
    ]);
  });

  it("masks at any depth with ..", () => {
    const r = maskJson(doc, { paths: paths("$..password") });
    expect(r.value).toMatchObject({ meta: { password: COLUMN_MASK, nested: { password: COLUMN_MASK } } });
    expect(r.hits.map((h) => h.path)).toEqual(["$.meta.password", "$.meta.nested.password"]);
  });

  it("never changes the input and shares untouched subtrees", () => {
    const before = structuredClone(doc);
    const r = maskJson(doc, { paths: paths("$.meta.password") });
    expect(doc).toEqual(before);
    const out = r.value as typeof doc;
    expect(out).not.toBe(doc);
    expect(out.users).toBe(doc.users);
    expect(out.meta.nested).toBe(doc.meta.nested);
  });

  it("returns the very input when nothing matches or there are no rules", () => {
    expect(maskJson(doc, { paths: paths("$.nothing.here") }).value).toBe(doc);
    expect(maskJson(doc, {}).value).toBe(doc);
    expect(maskJson(doc, { paths: paths(), masker: Masker.from(undefined) }).value).toBe(doc);
  });

  it("reports keys that need quoting in bracket form", () => {
    const r = maskJson({ data: { "api-key": "x", "tls.key": "y", "a'b\"": "z" } }, { paths: paths("$.data.*") });
    expect(r.hits.map((h) => h.path)).toEqual(["$.data.api-key", '$.data["tls.key"]', `$.data["a'b\\""]`]);
  });

  it("keeps a __proto__ member a member", () => {
    const input = JSON.parse('{"__proto__": {"secret": "x"}, "a": "b"}') as unknown;
    const r = maskJson(input, { paths: paths("$.a") });
    expect(Object.getPrototypeOf(r.value)).toBe(Object.prototype);
    expect(JSON.stringify(r.value)).toBe(`{"__proto__":{"secret":"x"},"a":"${COLUMN_MASK}"}`);
  });

  it("refuses a document nested too deep rather than overflowing", () => {
    let deep: unknown = "x";
    for (let i = 0; i < MAX_JSON_DEPTH + 5; i++) deep = [deep];
    expect(() => maskJson(deep, { paths: paths("$..a") })).toThrow(JsonMaskError);
    expect(() => maskJson(deep, { masker: detectors })).toThrow(JsonMaskError);
    // without rules it is not walked at all
    expect(maskJson(deep, {}).value).toBe(deep);
  });
});

describe("maskJson by content", () => {
  it("detectors hit inside nested strings, after path masking", () => {
    const input = { a: [{ b: { c: "mail ann@example.com now" } }], pw: "ann@example.com" };
    const r = maskJson(input, { paths: paths("$.pw"), masker: detectors });
    expect(r.value).toEqual({ a: [{ b: { c: `mail ${EMAIL_MASK} now` } }], pw: COLUMN_MASK });
    expect(r.hits).toEqual([
      { path: "$.a[0].b.c", kind: "email" },
      { path: "$.pw", kind: "path" },
    ]);
  });

  it("masks a key that holds a secret, and keeps colliding masked keys apart", () => {
    const input = { "ann@example.com": 1, "bob@example.org": 2, "****@****": 3, plain: "x" };
    const r = maskJson(input, { masker: detectors });
    expect(r.value).toEqual({ "****@****~2": 1, "****@****~3": 2, "****@****": 3, plain: "x" });
    expect(r.hits).toEqual([
      { path: '$["****@****~2"]', kind: "email" },
      { path: '$["****@****~3"]', kind: "email" },
    ]);
  });

  it("paths match keys as sent, even when a detector masks the key", () => {
    const r = maskJson({ "ann@example.com": "v" }, { paths: paths('$["ann@example.com"]'), masker: detectors });
    expect(r.value).toEqual({ "****@****": COLUMN_MASK });
  });
});

describe("maskJsonText", () => {
  it("returns the original text when nothing was masked", () => {
    const text = '{ "a": 12345678901234567890, "b": "\\u003c" }\n';
    expect(maskJsonText(text, { paths: paths("$.c"), masker: detectors })).toEqual({ text, hits: [], parsed: true });
  });

  it("re-serializes compactly when something was masked", () => {
    const r = maskJsonText('{ "a": "ann@example.com",\n "b": 1 }', { masker: detectors });
    expect(r).toEqual({ text: `{"a":"${EMAIL_MASK}","b":1}`, hits: [{ path: "$.a", kind: "email" }], parsed: true });
  });

  it("a duplicate member cannot carry a value past the masker", () => {
    const text = '{"password": "hunter2", "password": null, "x": "ann@example.com\\u0020", "x": "y"}';
    const r = maskJsonText(text, { paths: paths("$.password"), masker: detectors });
    expect(r.text).toBe('{"password":null,"x":"y"}');
    expect(r.parsed).toBe(true);
  });

  it("falls back to the detectors over text that is not JSON", () => {
    const r = maskJsonText("user=ann@example.com; {", { paths: paths("$.a"), masker: detectors });
    expect(r).toEqual({ text: `user=${EMAIL_MASK}; {`, hits: [{ path: "", kind: "email" }], parsed: false });
    expect(maskJsonText("not json", { paths: paths("$.a") })).toEqual({ text: "not json", hits: [], parsed: false });
  });

  it("without rules the text is not even read", () => {
    expect(maskJsonText("{bad", {})).toEqual({ text: "{bad", hits: [], parsed: false });
  });
});

describe("hasDuplicateKeys", () => {
  it.each([
    ['{"a":1,"b":2}', false],
    ['{"a":1,"a":2}', true],
    ['{"a":1,"\\u0061":2}', true],
    ['{"a":{"a":1},"b":[{"a":1},{"a":2}]}', false],
    ['[{"a":1},{"b":{"c":1,"c":2}}]', true],
    ['{"a":"\\"a\\":1,","b":"x\\\\"}', false],
    ['{"a\\\\":1,"a\\\\":2}', true],
    ['{"k":"{\\"a\\":1,\\"a\\":2}"}', false],
    ['"just a string"', false],
    ["[1, 2, {}]", false],
  ])("%s: %s", (text, expected) => {
    JSON.parse(text); // the precondition: valid JSON
    expect(hasDuplicateKeys(text)).toBe(expected);
  });

  it("property: agrees with a reference over generated documents", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(hasDuplicateKeys(JSON.stringify(v))).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------- properties

const SECRET = "Zq9SeCrEt";
const secretText = fc.string({ minLength: 8, maxLength: 16 }).map((s) => `${SECRET}${s}`);
const secretValue = fc.oneof(
  secretText,
  secretText.map((s) => ({ inner: [s, { deeper: s }] })),
  secretText.map((s) => [s]),
);
const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom("a", "b", "__proto__", "x.y", "0"));

/** A document with `secret` at `keys`, every container on the way padded with arbitrary siblings. */
function plant(keys: (string | number)[], secret: unknown, filler: unknown[]): unknown {
  if (keys.length === 0) return secret;
  const [k, ...rest] = keys as [string | number, ...(string | number)[]];
  const inner = plant(rest, secret, filler.slice(1));
  const pad = filler[0];
  if (typeof k === "number") {
    const arr: unknown[] = Array.from({ length: k }, () => pad);
    arr.push(inner, pad);
    return arr;
  }
  const obj: Record<string, unknown> = {};
  Object.defineProperty(obj, "pad", { value: pad, enumerable: true, writable: true, configurable: true });
  Object.defineProperty(obj, k, { value: inner, enumerable: true, writable: true, configurable: true });
  return obj;
}

describe("property: a value at a masked path never appears in the output", () => {
  const step = fc.oneof(key, fc.nat(3));
  const filler = fc.array(fc.jsonValue({ maxDepth: 2 }), { minLength: 8, maxLength: 8 });

  it("exact path, wildcards and .. forms", () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 6 }),
        secretValue,
        filler,
        fc.array(fc.constantFrom("exact", "wild", "desc"), { minLength: 6, maxLength: 6 }),
        fc.boolean(),
        (keys, secret, pad, forms, viaText) => {
          if (JSON.stringify(pad).includes(SECRET)) return;
          const pattern =
            "$" +
            keys
              .map((k, i) => {
                const form = forms[i];
                if (form === "wild") return "[*]";
                // `..["x y"]` is not in the grammar: a name that needs quoting takes `..*`
                if (form === "desc" && typeof k === "string")
                  return /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(k) ? `..${k}` : "..*";
                return formatJsonPathStep(k);
              })
              .join("");
          const doc = plant(keys, secret, pad);
          const rules = { paths: compileJsonPaths([pattern]) };
          const out = viaText
            ? maskJsonText(JSON.stringify(doc), rules).text
            : JSON.stringify(maskJson(doc, rules).value);
          expect(out, pattern).not.toContain(SECRET);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("property: detectors find secrets wherever they are nested", () => {
  it("an email nested at any depth in any document is masked", () => {
    const email = fc.stringMatching(/^[a-z]{1,8}\.[a-z]{1,8}@[a-z]{2,8}\.(com|org|io)$/);
    fc.assert(
      fc.property(
        fc.array(fc.oneof(key, fc.nat(2)), { maxLength: 5 }),
        email,
        fc.array(fc.jsonValue({ maxDepth: 2 }), { minLength: 6, maxLength: 6 }),
        (keys, address, pad) => {
          const doc = plant(keys, `contact: ${address}.`, pad);
          const r = maskJson(doc, { masker: detectors });
          expect(JSON.stringify(r.value)).not.toContain(address);
          expect(r.hits.some((h) => h.kind === "email")).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("performance", () => {
  it("masks a 1 MB document well within budget", () => {
    const items = [];
    for (let i = 0, size = 0; size < 1_000_000; i++) {
      const item = {
        metadata: { name: `pod-${i}`, namespace: "prod", labels: { app: "web", tier: "frontend" }, uid: `uid-${i}` },
        spec: {
          containers: [
            { name: "app", image: "registry.example.com/web:1.2.3", env: [{ name: "MODE", value: "prod" }] },
          ],
        },
        status: { phase: "Running", podIP: `10.0.${i % 255}.${i % 7}` },
      };
      items.push(item);
      size += JSON.stringify(item).length;
    }
    const doc = { kind: "PodList", items };
    const rules = {
      paths: compileJsonPaths(["$..password", "$.items[*].spec.containers[*].env[*].value"]),
      masker: detectors,
    };
    maskJson(doc, rules); // warm up
    const t0 = performance.now();
    const r = maskJson(doc, rules);
    const ms = performance.now() - t0;
    expect(r.hits.length).toBe(items.length);
    // the budget is 50 ms; the bound here leaves room for a loaded test machine
    expect(ms).toBeLessThan(250);
  });
});
