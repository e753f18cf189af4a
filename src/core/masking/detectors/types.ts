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
   * Cheap test for something every hit contains; false means find() would find nothing. Written as a literal
   * search or a regexp without quantifiers: V8 scans those several times faster than `\d{4}`-style patterns or
   * one big alternation, which is why each detector has its own rather than one union.
   */
  mayContain(text: string): boolean;
  /** Shortest possible hit, to skip tiny values without scanning them. */
  readonly minLength: number;
  /** Appends every hit in text to out. */
  find(text: string, out: Span[]): void;
}
