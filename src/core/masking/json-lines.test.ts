import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { JsonLinesError, JsonLinesMasker } from "./json-lines.js";
import { compileJsonPaths, maskJson, type DocumentMask } from "./json-mask.js";
import { COLUMN_MASK, Masker } from "./masker.js";
import { EMAIL_MASK } from "./detectors/email.js";

const rules = { paths: compileJsonPaths(["$..password"]), masker: Masker.from({ detectors: ["email"] }) };
const mask: DocumentMask = (doc) => maskJson(doc, rules);

function run(chunks: Buffer[], maxLineBytes = 1 << 20): { out: string; emits: number } {
  const parts: Buffer[] = [];
  const m = new JsonLinesMasker(mask, (b) => parts.push(Buffer.from(b)), maxLineBytes);
  for (const c of chunks) m.write(c);
  m.end();
  return { out: Buffer.concat(parts).toString(), emits: parts.length };
}

const STREAM = [
  `{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"web-1"},"spec":{"password":"p1"}}}`,
  `{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"web-1","annotations":{"owner":"ann@example.com"}}}}`,
  ``,
  `{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12345"}}}`,
  `{"type": "DELETED",  "object": {"note": "naïve ☃ text"}}`,
].join("\n");
const MASKED = [
  `{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"web-1"},"spec":{"password":"${COLUMN_MASK}"}}}`,
  `{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"web-1","annotations":{"owner":"${EMAIL_MASK}"}}}}`,
  ``,
  `{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12345"}}}`,
  `{"type": "DELETED",  "object": {"note": "naïve ☃ text"}}`,
].join("\n");

describe("JsonLinesMasker", () => {
  it("masks each line as one document; unchanged lines pass byte for byte", () => {
    expect(run([Buffer.from(STREAM + "\n")]).out).toBe(MASKED + "\n");
  });

  it("the last line without a newline is masked at end()", () => {
    expect(run([Buffer.from(STREAM)]).out).toBe(MASKED);
  });

  it("emits once per chunk that completes lines, nothing for a partial line", () => {
    const parts: Buffer[] = [];
    const m = new JsonLinesMasker(mask, (b) => parts.push(b), 1000);
    m.write(Buffer.from('{"a":1}\n{"b":'));
    expect(parts.map(String)).toEqual(['{"a":1}\n']);
    m.write(Buffer.from("2"));
    expect(parts).toHaveLength(1);
    m.write(Buffer.from('}\n{"c":3}\n'));
    expect(parts.map(String)).toEqual(['{"a":1}\n', '{"b":2}\n{"c":3}\n']);
  });

  it("keeps CRLF endings", () => {
    expect(run([Buffer.from('{"password":"x"}\r\n{"a":1}\r\n')]).out).toBe(
      `{"password":"${COLUMN_MASK}"}\r\n{"a":1}\r\n`,
    );
  });

  it("property: any cut of the stream into chunks gives the same output", () => {
    const whole = Buffer.from(STREAM + "\n");
    const expected = run([whole]).out;
    // every single cut position, including inside multi-byte characters
    for (let cut = 0; cut <= whole.length; cut++) {
      expect(run([whole.subarray(0, cut), whole.subarray(cut)]).out, `cut at ${cut}`).toBe(expected);
    }
    // byte by byte
    expect(run([...whole].map((b) => Buffer.from([b]))).out).toBe(expected);
    // arbitrary cuts
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: whole.length - 1 }), { maxLength: 12 }), (cuts) => {
        const at = [0, ...cuts.sort((a, b) => a - b), whole.length];
        const chunks = at.slice(1).map((end, i) => whole.subarray(at[i], end));
        expect(run(chunks).out).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  it("copies a held tail, so the caller may reuse its buffer", () => {
    const parts: Buffer[] = [];
    const m = new JsonLinesMasker(mask, (b) => parts.push(b), 1000);
    const buf = Buffer.from('{"password":"p');
    m.write(buf);
    buf.fill(0x20);
    m.write(Buffer.from('1"}\n'));
    expect(Buffer.concat(parts).toString()).toBe(`{"password":"${COLUMN_MASK}"}\n`);
  });

  describe("fails closed", () => {
    it("on a line longer than maxLineBytes, as soon as the held part is too long", () => {
      const parts: Buffer[] = [];
      const m = new JsonLinesMasker(mask, (b) => parts.push(b), 16);
      m.write(Buffer.from('{"a":1}\n{"password":"'));
      expect(() => m.write(Buffer.from("secret-secret"))).toThrow(JsonLinesError);
      expect(parts.map(String)).toEqual(['{"a":1}\n']);
      // and stays failed
      expect(() => m.write(Buffer.from('"}\n'))).toThrow(JsonLinesError);
      expect(() => m.end()).toThrow(JsonLinesError);
      expect(parts).toHaveLength(1);
    });

    it("on a complete line longer than maxLineBytes in one chunk, after the lines before it", () => {
      const parts: Buffer[] = [];
      const m = new JsonLinesMasker(mask, (b) => parts.push(b), 16);
      expect(() => m.write(Buffer.from('{"a":1}\n{"password":"secret-secret"}\n{"b":2}\n'))).toThrow(/exceeds 16/);
      expect(Buffer.concat(parts).toString()).toBe('{"a":1}\n');
    });

    it("on a line that is not JSON", () => {
      const parts: Buffer[] = [];
      const m = new JsonLinesMasker(mask, (b) => parts.push(b), 1000);
      expect(() => m.write(Buffer.from('{"a":1}\npassword=hunter2\n'))).toThrow(/not JSON/);
      expect(Buffer.concat(parts).toString()).toBe('{"a":1}\n');
    });

    it("on a truncated last line", () => {
      const m = new JsonLinesMasker(mask, () => undefined, 1000);
      m.write(Buffer.from('{"password":"hun'));
      expect(() => m.end()).toThrow(/not JSON/);
    });

    it("when the mask itself throws", () => {
      const m = new JsonLinesMasker(
        () => {
          throw new Error("boom");
        },
        () => undefined,
        1000,
      );
      expect(() => m.write(Buffer.from('{"a":1}\n'))).toThrow("boom");
      expect(() => m.end()).toThrow("boom");
    });
  });
});
