import { Masker } from "../../core/masking/index.js";
import type { PostgresConnectionConfig } from "../../core/policy/schema.js";
import type { MaskingDetector } from "../../core/policy/vocabulary.js";
import { bodyOf, type Frame } from "./framing.js";
import { readCString } from "./wire.js";

/** What the Bind recording needs from the core masker: content detectors over text and over bytes. */
export interface ParamMasker {
  maskText(text: string): { text: string } | undefined;
  maskBytes(value: Buffer): { bytes: Buffer } | undefined;
}

/**
 * Detectors that always run over bound parameters, whatever the connection's `masking` says: a parameter is
 * evidence the client wrote, not a result it read, and these four are secrets in any column (tokens, keys,
 * card numbers). The connection's own detectors (email, iban...) are added to them.
 */
export const PARAM_SECRET_DETECTORS: readonly MaskingDetector[] = ["jwt", "private_key", "aws_key", "credit_card"];

const maskers = new WeakMap<PostgresConnectionConfig, Masker>();

/** The detectors for one connection's bound parameters, compiled once per connection config. */
export function paramMaskerFor(connection: PostgresConnectionConfig): ParamMasker {
  let masker = maskers.get(connection);
  if (!masker) {
    const detectors = new Set<MaskingDetector>([...PARAM_SECRET_DETECTORS, ...(connection.masking?.detectors ?? [])]);
    masker = Masker.from({ detectors: [...detectors] });
    maskers.set(connection, masker);
  }
  return masker;
}

/** Bytes of each parameter kept in the recording. */
export const PARAM_RECORD_LIMIT = 1024;
/** Parameters kept per Bind. */
export const PARAMS_RECORDED = 64;
/**
 * Bytes of a longer parameter the detectors look at before it is cut to PARAM_RECORD_LIMIT, so a secret that
 * straddles the cut (a card number, a JWT up to this size) is still recognised and masked as a whole.
 */
export const PARAM_SCAN_LIMIT = 16 * 1024;

export interface BindRecord {
  portal: string;
  statement: string;
  /** Text-format values as text, binary ones as `\x` hex; detector hits masked; each cut at PARAM_RECORD_LIMIT. */
  params: (string | null)[];
  /** Parameters in the message (params holds at most PARAMS_RECORDED). */
  total: number;
  /** Bytes of all parameter values. */
  bytes: number;
  /** Parameters a detector masked. */
  masked: number;
}

/**
 * Reads a Bind message for the recording. A value without a detector hit costs what showing it costs (one
 * string); only values longer than PARAM_RECORD_LIMIT, or binary ones at least as long as the shortest
 * possible hit, are also viewed as bytes by the detectors.
 */
export function readBind(frame: Frame, masker: ParamMasker): BindRecord {
  const body = bodyOf(frame);
  const [portal, a] = readCString(body, 0);
  const [statement, b] = readCString(body, a);
  let off = b;
  const nFormats = body.readInt16BE(off);
  const formatsAt = off + 2;
  off += 2 + 2 * nFormats;
  const nParams = body.readInt16BE(off);
  off += 2;
  const params: (string | null)[] = [];
  let total = 0;
  let masked = 0;
  for (let i = 0; i < nParams; i++) {
    const len = body.readInt32BE(off);
    off += 4;
    if (len < 0) {
      if (params.length < PARAMS_RECORDED) params.push(null);
      continue;
    }
    total += len;
    if (params.length < PARAMS_RECORDED) {
      const f = nFormats === 1 ? 0 : i;
      const format = f < nFormats ? body.readInt16BE(formatsAt + 2 * f) : 0;
      let shown: string;
      if (format === 0 && len <= PARAM_RECORD_LIMIT) {
        shown = body.toString("utf8", off, off + len);
        const hit = masker.maskText(shown);
        if (hit) {
          shown = hit.text;
          masked++;
        }
      } else {
        // binary values (a text value sent in binary format is its UTF-8 bytes) and long ones: scan the bytes
        let v = body.subarray(off, off + Math.min(len, PARAM_SCAN_LIMIT));
        const hit = masker.maskBytes(v);
        if (hit) {
          v = hit.bytes;
          masked++;
        }
        if (v.length > PARAM_RECORD_LIMIT) v = v.subarray(0, PARAM_RECORD_LIMIT);
        shown = format === 1 ? `\\x${v.toString("hex")}` : v.toString("utf8");
        if (len > PARAM_RECORD_LIMIT) shown = `${shown}… (${len} bytes)`;
      }
      params.push(shown);
    }
    off += len;
  }
  return { portal, statement, params, total: nParams, bytes: total, masked };
}
