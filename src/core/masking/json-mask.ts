import { hasDuplicateKeys } from "./json-keys.js";
import { formatJsonPathStep, type JsonPathSet } from "./json-path.js";
import { COLUMN_MASK, type Masker } from "./masker.js";

export { compileJsonPaths, JsonPathError, JsonPathSet, parseJsonPath } from "./json-path.js";

/**
 * Masking of JSON documents (HTTP and Kubernetes bodies): values at the connection's `json_paths`, then content
 * detectors over every remaining string and every object key. The input is never changed; untouched subtrees are
 * shared with the result, so a document where nothing matches costs one walk and no copy.
 */

export interface JsonMaskRules {
  paths?: JsonPathSet | undefined;
  masker?: Masker | undefined;
}

/** Where something was masked: the JSON path of the value (or key) in the result, and why. */
export interface JsonMaskHit {
  path: string;
  /** `path` for a json_paths match, else the detector's name. */
  kind: string;
}

export interface JsonMaskResult {
  value: unknown;
  hits: JsonMaskHit[];
}

/** A document nested deeper than this is refused: recursion must not end in a stack overflow. */
export const MAX_JSON_DEPTH = 1000;

export class JsonMaskError extends Error {
  override name = "JsonMaskError";
}

/** The path to a container being walked, as a chain; formatted only when something below it is masked. */
interface Where {
  parent: Where | undefined;
  key: string | number;
}

function pathOf(where: Where | undefined, key?: string | number): string {
  const keys: (string | number)[] = key === undefined ? [] : [key];
  for (let w = where; w; w = w.parent) keys.push(w.key);
  let out = "$";
  for (let i = keys.length - 1; i >= 0; i--) out += formatJsonPathStep(keys[i] as string | number);
  return out;
}

// JSON.parse makes `__proto__` an own member; plain assignment would set the prototype instead.
function setMember(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__")
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** A whole value at a masked path: text and containers become the mask, so nothing inside leaks. */
function replacement(value: unknown): unknown {
  return typeof value === "number" || typeof value === "boolean" ? null : COLUMN_MASK;
}

const NO_STATES: readonly number[] = [];

/**
 * One walk. A node is visited as (its parent's chain, its key in the result); the chain gets a link only where the
 * walk descends into a container, so leaves cost no allocation unless something in them is masked.
 */
class Walker {
  readonly hits: JsonMaskHit[] = [];
  private readonly scan: boolean;

  constructor(
    private readonly paths: JsonPathSet | undefined,
    private readonly masker: Masker | undefined,
  ) {
    this.scan = masker !== undefined && masker.hasDetectors;
  }

  /** The masked value, or `value` itself when nothing in it changed. */
  walk(
    value: unknown,
    states: readonly number[],
    parent: Where | undefined,
    key: string | number | undefined,
    depth: number,
  ): unknown {
    if (typeof value === "string") {
      if (!this.scan) return value;
      const r = this.masker?.maskText(value);
      if (!r) return value;
      const path = pathOf(parent, key);
      for (const h of r.hits) this.hits.push({ path, kind: h.detector });
      return r.text;
    }
    if (value === null || typeof value !== "object") return value;
    if (states.length === 0 && !this.scan) return value;
    if (depth >= MAX_JSON_DEPTH) throw new JsonMaskError(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    const at = key === undefined ? undefined : { parent, key };
    return Array.isArray(value)
      ? this.array(value, states, at, depth + 1)
      : this.object(value as Record<string, unknown>, states, at, depth + 1);
  }

  /** `key` is matched against the paths; `shown` is the key as the result carries it (its detectors' mask). */
  private child(
    value: unknown,
    key: string | number,
    shown: string | number,
    states: readonly number[],
    at: Where | undefined,
    depth: number,
  ): unknown {
    if (states.length === 0) return this.walk(value, NO_STATES, at, shown, depth);
    const next = (this.paths as JsonPathSet).advance(states, key);
    if (next !== null) return this.walk(value, next, at, shown, depth);
    if (value === null) return value; // nothing to hide
    this.hits.push({ path: pathOf(at, shown), kind: "path" });
    return replacement(value);
  }

  private array(value: unknown[], states: readonly number[], at: Where | undefined, depth: number): unknown {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      const m = this.child(v, i, i, states, at, depth);
      if (m !== v) {
        out ??= value.slice();
        out[i] = m;
      }
    }
    return out ?? value;
  }

  private object(
    value: Record<string, unknown>,
    states: readonly number[],
    at: Where | undefined,
    depth: number,
  ): unknown {
    const keys = Object.keys(value);
    let out: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const v = value[key];
      // paths match the key as sent; detectors may rewrite the key text itself, since a secret can be a key
      const keyHit = this.scan ? this.masker?.maskText(key) : undefined;
      let shown = key;
      if (keyHit) {
        // two keys masked alike, or a masked key equal to a real one, must not overwrite each other
        shown = keyHit.text;
        for (let n = 2; Object.hasOwn(value, shown) || (out && Object.hasOwn(out, shown)); n++)
          shown = `${keyHit.text}~${n}`;
        const path = pathOf(at, shown);
        for (const h of keyHit.hits) this.hits.push({ path, kind: h.detector });
      }
      const m = this.child(v, key, shown, states, at, depth);
      if (m === v && !keyHit && !out) continue;
      if (!out) {
        out = {};
        for (let j = 0; j < i; j++) setMember(out, keys[j] as string, value[keys[j] as string]);
      }
      setMember(out, shown, m);
    }
    return out ?? value;
  }
}

/**
 * Masks one parsed JSON value and returns a new value (the input is untouched). A value at a matching path becomes
 * COLUMN_MASK when it is a string, object or array (as a whole, so nothing inside leaks) and null when it is a number
 * or boolean; every other string and object key passes the masker's content detectors. Throws JsonMaskError for a
 * document nested deeper than MAX_JSON_DEPTH: the caller must then refuse the response, not pass it on.
 */
export function maskJson(value: unknown, rules: JsonMaskRules): JsonMaskResult {
  const paths = rules.paths && !rules.paths.empty ? rules.paths : undefined;
  if (!paths && !rules.masker?.hasDetectors) return { value, hits: [] };
  const walker = new Walker(paths, rules.masker);
  const out = walker.walk(value, paths ? paths.start() : NO_STATES, undefined, undefined, 0);
  return { value: out, hits: walker.hits };
}

/** What a document mask returns: the new value and what it hid (only the count matters here). */
export type DocumentMask = (doc: unknown) => { value: unknown; hits: readonly unknown[] };

/**
 * Masks a text that holds one JSON document: undefined when it is not JSON. Unchanged text comes back as itself
 * (the target's formatting and number spelling kept); changed text is re-serialized compactly. A document with a
 * duplicate member name is always re-serialized: JSON.parse keeps the last value, so the masker never saw the
 * earlier ones and the original text must not pass.
 */
export function maskDocumentText(
  text: string,
  mask: DocumentMask,
): { text: string; hits: readonly unknown[]; value: unknown } | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = mask(doc);
  if (r.hits.length === 0 && r.value === doc && !hasDuplicateKeys(text)) return { text, hits: r.hits, value: doc };
  return { text: JSON.stringify(r.value), hits: r.hits, value: r.value };
}

/**
 * maskJson over a body's text. Text that is not JSON still passes the content detectors (`parsed: false`, hit paths
 * empty), so a body that merely claims to be JSON is not a way around them. Without any rule the text is returned
 * as it is, unread (`parsed: false`).
 */
export function maskJsonText(
  text: string,
  rules: JsonMaskRules,
): { text: string; hits: JsonMaskHit[]; parsed: boolean } {
  if (!(rules.paths && !rules.paths.empty) && !rules.masker?.hasDetectors) return { text, hits: [], parsed: false };
  let hits: JsonMaskHit[] = [];
  const r = maskDocumentText(text, (doc) => {
    const m = maskJson(doc, rules);
    hits = m.hits;
    return m;
  });
  if (r) return { text: r.text, hits, parsed: true };
  const raw = rules.masker?.maskText(text);
  if (!raw) return { text, hits: [], parsed: false };
  return { text: raw.text, hits: raw.hits.map((h) => ({ path: "", kind: h.detector })), parsed: false };
}
