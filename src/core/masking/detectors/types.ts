import type { MaskingDetector } from "../../policy/vocabulary.js";

/** One region of a value to replace. Offsets are UTF-16 units for text and bytes for the byte view. */
export interface Span {
  start: number;
  end: number;
  replacement: string;
  detector: MaskingDetector;
}

/**
 * A content detector. Detectors only ever match ASCII (plus, for email, any non-ASCII unit as part of an address),
 * so the same code runs over a JS string and over a latin1 view of UTF-8 bytes, and a span never splits a
 * multi-byte character.
 */
export interface Detector {
  readonly name: MaskingDetector;
  /**
   * RegExp source (no flags) that every hit contains. The masker ORs the enabled triggers into one pre-filter, so
   * a value without any candidate costs one scan.
   */
  readonly trigger: string;
  /** Shortest possible hit, to skip tiny values without scanning them. */
  readonly minLength: number;
  /** Appends every hit in text to out. */
  find(text: string, out: Span[]): void;
}

/** Case-insensitive RegExp source for an ASCII word without the `i` flag, so it can join a case-sensitive union. */
export function anyCase(word: string): string {
  let out = "";
  for (const ch of word) {
    const lower = ch.toLowerCase();
    const upper = ch.toUpperCase();
    out += lower === upper ? ch : `[${upper}${lower}]`;
  }
  return out;
}
