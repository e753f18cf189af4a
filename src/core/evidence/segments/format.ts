/**
 * The evidence log's on-disk format: text lines in segment files, one writer per directory
 * (`DATA/evidence/<writer>/00000001.seg`, ...). docs/evidence.md restates this for auditors who verify a log
 * without Gatehouse's code. Every line is `<tag> <payload>\n`; canonical JSON never holds a raw newline, so a
 * newline ends a frame, and a line without one at the end of the last segment is a torn write.
 *
 *   h <json>          segment header {format, segment, writer}: the first line of every segment
 *   k <json>          a signing key record {key_id, algorithm, public_key, created_at}
 *   a <hash> <text>   an audit record: text is the canonical JSON of the record without `hash`, hash its SHA-256
 *   r <hash> <text>   a recording event, the same way
 *   s <json>          a session header (canonical JSON), which starts a recording chain
 *   z <json>          a session seal (canonical JSON with signature and key_id)
 *   c <json string>   a checkpoint: a signed note (see note.ts) naming the writer, seq, hash and time
 *
 * The hashed bytes are the stored bytes: a record is encoded once, hashed, and written as it was hashed.
 */
import { sha256Hex } from "../canonical.js";

export const SEGMENT_FORMAT = "gatehouse-evidence/1";
export const SEGMENT_SUFFIX = ".seg";
/** The directory under the data directory that holds one folder per writer. */
export const EVIDENCE_DIR = "evidence";

export type LineTag = "h" | "k" | "a" | "r" | "s" | "z" | "c";

export interface SegmentHeader {
  format: string;
  segment: number;
  writer: string;
}

/** Segment file name for a segment number: zero-padded so that names sort in order. */
export function segmentFileName(n: number): string {
  return `${String(n).padStart(8, "0")}${SEGMENT_SUFFIX}`;
}

/** The segment number a file name carries, or undefined for anything else in the directory. */
export function segmentNumber(fileName: string): number | undefined {
  const m = /^(\d{8})\.seg$/.exec(fileName);
  return m ? Number(m[1]) : undefined;
}

/** Writer names are also directory names: letters, digits, dot, dash and underscore. */
export const WRITER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function headerLine(h: SegmentHeader): string {
  return `h {"format":${JSON.stringify(h.format)},"segment":${h.segment},"writer":${JSON.stringify(h.writer)}}\n`;
}

/** `a`/`r` line from the canonical text that was hashed, and its hash. */
export function hashedLine(tag: "a" | "r", hash: string, text: string): string {
  return `${tag} ${hash} ${text}\n`;
}

export function jsonLine(tag: "k" | "s" | "z" | "h", canonicalText: string): string {
  return `${tag} ${canonicalText}\n`;
}

export function checkpointLine(note: string): string {
  return `c ${JSON.stringify(note)}\n`;
}

/** One parsed line. `value` is the parsed JSON (for `c`: the note text); `text` the hashed text of `a`/`r`. */
export type ParsedLine =
  | { tag: "a" | "r"; hash: string; text: string; value: Record<string, unknown> }
  | { tag: "h" | "k" | "s" | "z"; value: Record<string, unknown> }
  | { tag: "c"; note: string };

export class LineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LineError";
  }
}

const HASH = /^[0-9a-f]{64}$/;

function parseObject(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new LineError("not valid JSON");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new LineError("not a JSON object");
  return v as Record<string, unknown>;
}

/**
 * Parses one line (without its newline). With `checkHash`, an `a`/`r` line whose text does not hash to its
 * hash is refused (recovery uses it to tell a torn write from a record; verify reports it as a changed record).
 */
export function parseLine(line: string, checkHash = false): ParsedLine {
  const tag = line[0];
  if (line[1] !== " ") throw new LineError("no tag");
  switch (tag) {
    case "a":
    case "r": {
      const hash = line.slice(2, 66);
      if (!HASH.test(hash) || line[66] !== " ") throw new LineError("no hash");
      const text = line.slice(67);
      if (checkHash && sha256Hex(text) !== hash) throw new LineError("hash mismatch");
      return { tag, hash, text, value: parseObject(text) };
    }
    case "h":
    case "k":
    case "s":
    case "z":
      return { tag, value: parseObject(line.slice(2)) };
    case "c": {
      let note: unknown;
      try {
        note = JSON.parse(line.slice(2));
      } catch {
        throw new LineError("not valid JSON");
      }
      if (typeof note !== "string") throw new LineError("checkpoint is not a string");
      return { tag, note };
    }
    default:
      throw new LineError(`unknown tag ${JSON.stringify(tag ?? "")}`);
  }
}
