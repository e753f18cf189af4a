import type { MaskingDetector } from "../policy/vocabulary.js";
import { DETECTOR_RANK, type Span } from "./detectors/index.js";

export interface DetectorHit {
  detector: string;
  count: number;
}

/** What the rest of a hit becomes when an earlier hit already covers its beginning. */
const TAIL_MASK = "********";

/**
 * Orders hits and settles overlaps, the same way every time: earliest start wins, then the longest, then detector
 * precedence. A hit inside an accepted one is dropped; a hit that sticks out past it has its remainder masked, so
 * nothing a detector found is ever left in the clear.
 */
export function resolve(spans: Span[]): Span[] {
  if (spans.length === 1) return spans;
  spans.sort(
    (a, b) =>
      a.start - b.start || b.end - a.end || (DETECTOR_RANK.get(a.detector) ?? 0) - (DETECTOR_RANK.get(b.detector) ?? 0),
  );
  const out: Span[] = [];
  let cursor = 0;
  for (const s of spans) {
    if (s.end <= cursor) continue;
    if (s.start >= cursor) out.push(s);
    else out.push({ start: cursor, end: s.end, replacement: TAIL_MASK, detector: s.detector });
    cursor = s.end;
  }
  return out;
}

export function hitsOf(spans: readonly Span[]): DetectorHit[] {
  const counts = new Map<MaskingDetector, number>();
  for (const s of spans) counts.set(s.detector, (counts.get(s.detector) ?? 0) + 1);
  return [...counts].map(([detector, count]) => ({ detector, count }));
}

export function applyToString(text: string, spans: readonly Span[]): string {
  let out = "";
  let at = 0;
  for (const s of spans) {
    out += text.slice(at, s.start) + s.replacement;
    at = s.end;
  }
  return out + text.slice(at);
}

/** Offsets are byte offsets (the spans were found on the latin1 view); bytes outside the spans are copied as is. */
export function applyToBytes(bytes: Buffer, spans: readonly Span[]): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const s of spans) {
    parts.push(bytes.subarray(at, s.start), Buffer.from(s.replacement, "latin1"));
    at = s.end;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts);
}
