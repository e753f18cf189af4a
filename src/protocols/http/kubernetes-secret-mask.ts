import { formatJsonPathStep } from "../../core/masking/json-path.js";
import { COLUMN_MASK } from "../../core/masking/masker.js";

/**
 * Masking of Kubernetes Secrets in every JSON body and watch event of a Kubernetes connection, independent of the
 * connection's own masking rules: a Secret's values never reach an agent or a recording.
 */

/**
 * What every value of a Secret's `data` becomes: base64 of COLUMN_MASK ("********"). It stays valid base64, so kubectl
 * and client-go still decode the object (`-o jsonpath='{.data.x}' | base64 -d` prints the mask, `describe` shows 8
 * bytes); the keys are kept, so an agent can still see which keys a Secret has.
 */
export const MASKED_SECRET_DATA = Buffer.from(COLUMN_MASK).toString("base64");

/** kubectl apply keeps the whole applied object here, a Secret's data in clear included. */
export const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** A document nested deeper than this is refused (the caller fails closed), not walked into a stack overflow. */
export const MAX_SECRET_WALK_DEPTH = 1000;

export class SecretMaskError extends Error {
  override name = "SecretMaskError";
}

export interface SecretMaskOptions {
  /**
   * The request was for core `secrets` (list, get, watch, create...): an object without `kind` where a Secret would
   * stand (the body, a list item, a watch event's object, a Table row's object) is then a Secret, and the
   * last-applied annotation of a metadata-only form (PartialObjectMetadata) is masked whatever it holds.
   */
  secretsRequest?: boolean;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// JSON.parse makes `__proto__` an own member; plain assignment would set the prototype instead.
function setMember(obj: Json, key: string, value: unknown): void {
  if (key === "__proto__")
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

function copyWith(obj: Json, key: string, value: unknown): Json {
  const out: Json = {};
  for (const k of Object.keys(obj)) setMember(out, k, k === key ? value : obj[k]);
  return out;
}

/**
 * Where an object stands. A kindless object can only be a Secret in a slot where the API server puts whole objects:
 * the body, a list's items, a watch event's object, a Table row's object.
 */
const enum Place {
  nested,
  slot,
  secretListItem,
  tableRow,
}

class SecretWalker {
  readonly hits: string[] = [];
  constructor(private readonly secretsRequest: boolean) {}

  /** The masked value, or `value` itself when nothing in it changed. */
  visit(value: unknown, place: Place, path: string, depth: number): unknown {
    if (typeof value !== "object" || value === null) return value;
    if (depth >= MAX_SECRET_WALK_DEPTH)
      throw new SecretMaskError(`JSON nested deeper than ${MAX_SECRET_WALK_DEPTH} levels`);
    if (Array.isArray(value)) return this.array(value, place, path, depth);
    const obj = value as Json;
    const kind = obj.kind;
    const isSecret =
      kind === "Secret" ||
      place === Place.secretListItem ||
      (kind === undefined && place === Place.slot && this.secretsRequest && isObject(obj.metadata));
    let out = isSecret ? this.secret(obj, path) : this.lastApplied(obj, kind, path);
    // the rest is walked too, a Secret's included: what else it holds (a look-alike's items) is not trusted
    for (const key of Object.keys(out)) {
      if (isSecret && (key === "data" || key === "stringData")) continue;
      const child = out[key];
      if (typeof child !== "object" || child === null) continue;
      const m = this.visit(child, this.placeOf(out, kind, key, place), path + formatJsonPathStep(key), depth + 1);
      if (m !== child) out = copyWith(out, key, m);
    }
    return out;
  }

  /** An array's elements all take `place`. */
  private array(list: unknown[], place: Place, path: string, depth: number): unknown[] {
    let out: unknown[] | undefined;
    for (let i = 0; i < list.length; i++) {
      const m = this.visit(list[i], place, path + formatJsonPathStep(i), depth + 1);
      if (m !== list[i]) (out ??= list.slice())[i] = m;
    }
    return out ?? list;
  }

  /** The place of `obj[key]` (for an array: of its elements). */
  private placeOf(obj: Json, kind: unknown, key: string, place: Place): Place {
    // SecretList items carry no kind of their own (the API server leaves it to the list)
    if (key === "items" && kind === "SecretList") return Place.secretListItem;
    if (key === "items" && place === Place.slot) return Place.slot;
    if (key === "rows" && kind === "Table") return Place.tableRow;
    if (key === "object" && (place === Place.tableRow || typeof obj.type === "string")) return Place.slot;
    return Place.nested;
  }

  /** A Secret: every data and stringData value, and the last-applied annotation, masked; keys kept. */
  private secret(secret: Json, path: string): Json {
    let out = secret;
    for (const [field, masked] of [
      ["data", MASKED_SECRET_DATA],
      ["stringData", COLUMN_MASK],
    ] as const) {
      const values = secret[field];
      if (values === undefined || values === null) continue;
      const at = path + formatJsonPathStep(field);
      let replaced: unknown;
      if (isObject(values)) {
        const m: Json = {};
        for (const key of Object.keys(values)) {
          const v = values[key];
          setMember(m, key, v === null ? null : masked);
          if (v !== null) this.hits.push(at + formatJsonPathStep(key));
        }
        replaced = m;
      } else {
        // not a map (never from a real API server): nothing of it is shown
        replaced = COLUMN_MASK;
        this.hits.push(at);
      }
      out = copyWith(out, field, replaced);
    }
    return this.maskAnnotation(out, path);
  }

  /**
   * The last-applied annotation of an object that is not itself a Secret: a metadata-only form of one
   * (PartialObjectMetadata) still carries it. It is masked when it holds a Secret, when it is not JSON (what it
   * holds cannot be told) and, on a secrets request, for any metadata-only or kindless object.
   */
  private lastApplied(obj: Json, kind: unknown, path: string): Json {
    const text = annotationOf(obj);
    if (text === undefined) return obj;
    if (this.secretsRequest && (kind === undefined || kind === "PartialObjectMetadata"))
      return this.maskAnnotation(obj, path);
    let applied: unknown;
    try {
      applied = JSON.parse(text);
    } catch {
      return this.maskAnnotation(obj, path);
    }
    return isObject(applied) && applied.kind === "Secret" ? this.maskAnnotation(obj, path) : obj;
  }

  private maskAnnotation(obj: Json, path: string): Json {
    const text = annotationOf(obj);
    if (text === undefined) return obj;
    const metadata = obj.metadata as Json;
    const annotations = metadata.annotations as Json;
    this.hits.push(`${path}.metadata.annotations${formatJsonPathStep(LAST_APPLIED)}`);
    return copyWith(
      obj,
      "metadata",
      copyWith(metadata, "annotations", copyWith(annotations, LAST_APPLIED, COLUMN_MASK)),
    );
  }
}

function annotationOf(obj: Json): string | undefined {
  const metadata = obj.metadata;
  if (!isObject(metadata) || !isObject(metadata.annotations)) return undefined;
  const text = metadata.annotations[LAST_APPLIED];
  return typeof text === "string" ? text : undefined;
}

/**
 * Masks the Secrets in one decoded JSON body or watch event, wherever they stand: the object itself, a SecretList's
 * (kindless) items, a List's items, a watch event's object, a Table row's object, or nested anywhere with kind
 * Secret (any apiVersion: a look-alike is masked rather than trusted). Anything else, Status included, comes back
 * as the very same value. `hits` are the JSON paths of what was masked. Throws SecretMaskError for a document nested
 * deeper than MAX_SECRET_WALK_DEPTH: the caller must then refuse the response.
 */
export function maskKubernetesSecrets(
  obj: unknown,
  options: SecretMaskOptions = {},
): { value: unknown; hits: string[] } {
  const walker = new SecretWalker(options.secretsRequest === true);
  const value = walker.visit(obj, Place.slot, "$", 0);
  return { value, hits: walker.hits };
}
