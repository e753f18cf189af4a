/**
 * Content negotiation for masking: the gateway can only mask JSON, so it asks the API server for JSON and refuses a
 * response in any other form. Protobuf (`application/vnd.kubernetes.protobuf`), CBOR and YAML would carry a
 * Secret's data past the masker untouched.
 */

interface MediaRange {
  text: string;
  type: string;
  q: number;
}

/** Splits an Accept header into its media ranges (commas inside quoted parameter values do not split). */
function mediaRanges(accept: string): MediaRange[] {
  const parts: string[] = [];
  let current = "";
  let quoted = false;
  for (const c of accept) {
    if (c === '"') quoted = !quoted;
    if (c === "," && !quoted) {
      parts.push(current);
      current = "";
    } else current += c;
  }
  parts.push(current);
  const ranges: MediaRange[] = [];
  for (const part of parts) {
    const text = part.trim();
    if (text === "") continue;
    const [type = "", ...params] = text.split(";");
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    ranges.push({ text, type: type.trim().toLowerCase(), q: Number.isFinite(q) ? q : 0 });
  }
  return ranges;
}

const JSON_TYPE = "application/json";

/**
 * The Accept header to send instead: the client's own `application/json` ranges, parameters kept (so
 * `as=Table;g=meta.k8s.io;v=v1` and `as=PartialObjectMetadataList` forms still work), everything else dropped
 * (protobuf, CBOR, YAML, wildcards); plain `application/json` when nothing is left.
 */
export function jsonOnlyAccept(accept: string | undefined): string {
  const kept = mediaRanges(accept ?? "").filter((r) => r.type === JSON_TYPE && r.q > 0);
  return kept.length > 0 ? kept.map((r) => r.text).join(", ") : JSON_TYPE;
}

/**
 * Whether the client's Accept header lets the server answer in a form the gateway cannot mask. A wildcard counts
 * (the server chooses, and a proxy or aggregated API in front may choose otherwise than JSON); no header does not
 * (the API server then answers JSON). The adapter may simply always send jsonOnlyAccept(accept).
 */
export function wantsUnmaskableForm(accept: string | undefined): boolean {
  return mediaRanges(accept ?? "").some((r) => r.q > 0 && r.type !== JSON_TYPE);
}

/**
 * Whether a response body in this Content-Type can be masked: `application/json` with any parameters (a Table, a
 * watch stream's `stream=watch`, a charset). Anything else, a missing header included, is not: a response that
 * must be masked is then refused, never passed on. Content-Encoding (gzip) is the adapter's to undo or prevent.
 */
export function isMaskableContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const type = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  return type === JSON_TYPE;
}
