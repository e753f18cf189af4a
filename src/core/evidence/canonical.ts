import { hash } from "node:crypto";

/** prev_hash of the first record of a chain (and of the first retained record when nothing was cut). */
export const ZERO_HASH = "0".repeat(64);

/**
 * Turns a value into plain JSON data exactly as `JSON.stringify` would see it (Date -> string, undefined
 * object fields dropped, undefined/functions in arrays -> null, NaN/Infinity -> null). Evidence is hashed and
 * stored in this normalised form so that what is read back hashes identically. Throws on BigInt and cycles.
 */
export function toJsonValue<T>(value: T): T {
  const text = JSON.stringify(value);
  return (text === undefined ? undefined : JSON.parse(text)) as T;
}

/**
 * Canonical JSON: object keys sorted by UTF-16 code units (recursively), no insignificant whitespace, strings
 * and numbers serialised by ECMAScript JSON.stringify (shortest round-trip numbers), object members whose value
 * is undefined omitted. For JSON data this matches RFC 8785 (JCS). Input must already be JSON data
 * (see toJsonValue); non-finite numbers and other non-JSON values are rejected so a hash can never depend on
 * how a value happens to be stringified.
 */
export function canonicalJson(value: unknown): string {
  // a part encoded earlier (canonicalize): spliced in rather than walked and stringified again
  if (value instanceof RawJson) return value.text;
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonical JSON: non-finite number");
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(",")}]`;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new TypeError("canonical JSON: not a plain object");
      const obj = value as Record<string, unknown>;
      const parts: string[] = [];
      // default sort compares UTF-16 code units, which is what RFC 8785 asks for
      for (const key of Object.keys(obj).sort()) {
        const v = obj[key];
        if (v === undefined) continue;
        parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`);
      }
      return `{${parts.join(",")}}`;
    }
    default:
      throw new TypeError(`canonical JSON: unsupported ${typeof value}`);
  }
}

/** Canonical JSON text of a part of a record, already encoded; canonicalJson emits it verbatim. */
export class RawJson {
  constructor(readonly text: string) {}
}

// deeper than this the fast path hands the subtree to JSON.stringify, which reports cycles as TypeError
const FAST_DEPTH = 64;

/**
 * `canonicalJson(toJsonValue(value))` in one pass, without building the normalised copy: undefined when
 * JSON.stringify would give undefined. Plain objects, arrays and primitives are encoded directly; anything
 * else (toJSON, Date, boxed primitives, class instances, deep nesting) goes through toJsonValue, so the
 * result is identical by construction (test/evidence/canonical.test.ts compares both on odd inputs).
 */
export function canonicalize(value: unknown): string | undefined {
  exact = true;
  return encode(value, 0);
}

let exact = true;

/**
 * Whether the last `canonicalize` call's input was already plain JSON data, so that parsing its text would give
 * back an equal value (nothing was dropped, replaced or converted). Lets a caller keep its own object instead of
 * parsing the text back.
 */
export function canonicalizedExactly(): boolean {
  return exact;
}

function encode(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) return JSON.stringify(value);
      exact = false;
      return Number.isFinite(value) ? "0" : "null";
    case "boolean":
      return value ? "true" : "false";
    case "undefined":
    case "function":
    case "symbol":
      exact = false;
      return undefined;
    case "object": {
      if (value === null) return "null";
      if (depth < FAST_DEPTH && typeof (value as { toJSON?: unknown }).toJSON !== "function") {
        const proto = Object.getPrototypeOf(value) as unknown;
        if (proto === Array.prototype && Array.isArray(value)) {
          let out = "[";
          for (let i = 0; i < value.length; i++) out += `${i === 0 ? "" : ","}${encode(value[i], depth + 1) ?? "null"}`;
          return `${out}]`;
        }
        if (proto === Object.prototype || proto === null) {
          const obj = value as Record<string, unknown>;
          const keys = sortedKeys(obj);
          let out = "{";
          for (let i = 0; i < keys.length; i++) {
            const key = keys[i] as string;
            const v = encode(obj[key], depth + 1);
            if (v !== undefined) out += `${out.length === 1 ? "" : ","}${quotedKey(key)}:${v}`;
          }
          return `${out}}`;
        }
      }
      break;
    }
    default:
      break; // bigint: toJsonValue throws the TypeError JSON.stringify would
  }
  exact = false;
  const plain = toJsonValue(value);
  return plain === undefined ? undefined : canonicalJson(plain);
}

/** Objects with more keys than this are sorted by Array.prototype.sort, fewer by insertion sort. */
const INSERTION_SORT_MAX = 16;

/**
 * Own keys in UTF-16 code unit order; most records are built in that order already, so sorting is skipped. The
 * few keys of an event's data are sorted in place by insertion: `sort()` copies the array into a work area on
 * every call, and this runs for every object of every record. `<` on strings compares UTF-16 code units, the
 * order `sort()` uses by default.
 */
function sortedKeys(obj: object): string[] {
  const keys = Object.keys(obj);
  for (let i = 1; i < keys.length; i++) {
    if ((keys[i - 1] as string) > (keys[i] as string)) {
      if (keys.length > INSERTION_SORT_MAX) return keys.sort();
      for (let j = i; j < keys.length; j++) {
        const key = keys[j] as string;
        let k = j - 1;
        while (k >= 0 && (keys[k] as string) > key) {
          keys[k + 1] = keys[k] as string;
          k--;
        }
        keys[k + 1] = key;
      }
      return keys;
    }
  }
  return keys;
}

// Records repeat a small vocabulary of member names: each is quoted once. Bounded, since data may carry any keys.
const QUOTED_KEYS_LIMIT = 4096;
const quotedKeys = new Map<string, string>();

function quotedKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (quotedKeys.size >= QUOTED_KEYS_LIMIT) quotedKeys.clear();
    quotedKeys.set(key, quoted);
  }
  return quoted;
}

export function sha256Hex(text: string): string {
  // one-shot hash (Node >= 20.12): half the cost of createHash().update().digest() for short inputs
  return hash("sha256", text, "hex");
}

/** SHA-256 (hex) of the canonical JSON of `value`. */
export function canonicalHash(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}
