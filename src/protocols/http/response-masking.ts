import { maskDocumentText, type DocumentMask } from "../../core/masking/json-mask.js";
import type { Masker } from "../../core/masking/index.js";

/** How a connection's responses (and recorded request bodies) are masked. */
export interface BodyMasking {
  /** Masks one parsed JSON document (Kubernetes Secrets, json_paths, detectors over its strings). */
  json?: DocumentMask | undefined;
  /** Content detectors for bytes that are not JSON (text, logs, event streams). */
  text?: Masker | undefined;
  /**
   * Bodies must be JSON to be masked at all (Kubernetes: a Secret in any other form, protobuf or YAML, cannot be
   * masked): a response in another form is refused, and a request body in another form is recorded by size only.
   */
  jsonRequired?: boolean;
}

export function masksAnything(m: BodyMasking): boolean {
  return m.json !== undefined || m.text !== undefined;
}

const JSON_TYPE = /^application\/(?:[a-z0-9.+-]*\+)?json(?:\s*;|$)/;

export function isJsonContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && JSON_TYPE.test(contentType.toLowerCase());
}

/** Newline-delimited JSON: a Kubernetes watch (`;stream=watch`), NDJSON, JSON lines. */
export function isJsonStream(contentType: string | undefined): boolean {
  const ct = (contentType ?? "").toLowerCase();
  return (
    ct.includes("stream=watch") ||
    ct.startsWith("application/x-ndjson") ||
    ct.startsWith("application/ndjson") ||
    ct.startsWith("application/jsonl")
  );
}

/**
 * A whole body masked for the recording (a request body, which reaches the target as sent): as JSON when it parses,
 * else by the detectors. Undefined when it cannot be made safe to keep (see `jsonRequired`).
 */
export function maskWholeBody(
  bytes: Buffer,
  masking: BodyMasking,
  contentType: string | undefined,
): Buffer | undefined {
  if (masking.json && (isJsonContentType(contentType) || looksLikeJson(bytes))) {
    const masked = maskDocumentText(bytes.toString("utf8"), masking.json);
    if (masked) return masked.hits.length > 0 ? Buffer.from(masked.text) : bytes;
    // not JSON after all: the detectors below
  }
  if (masking.jsonRequired && bytes.length > 0) return undefined;
  return masking.text?.maskBytes(bytes)?.bytes ?? bytes;
}

function looksLikeJson(bytes: Buffer): boolean {
  for (const b of bytes) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    return b === 0x7b || b === 0x5b;
  }
  return false;
}
