import type { Detector, Span } from "./types.js";

// Every card-shaped window starts with four digits followed by at least three more. Searching for that fixed
// shape and growing the run by hand is several times faster than a `\d+(?:[ -]\d+)*` scan over digit-heavy text.
const TRIGGER = /\d\d\d\d[ -]?\d\d\d/;
const TRIGGER_ALL = /\d\d\d\d[ -]?\d\d\d/g;
const MIN_DIGITS = 13;
const MAX_DIGITS = 19;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

interface Group {
  start: number;
  end: number;
}

/**
 * A window of groups is card-shaped when it is one unseparated run of 13-19 digits, or starts with a group of four
 * followed by groups of three to six and a last group of any length (4-4-4-4, 4-6-5, 4-6-4, 4-4-4-1, 4-4-4-4-3).
 * Requiring that shape keeps lists of small numbers (`12 34 56 ...`) from being read as cards, which a bare Luhn
 * check would do one time in ten.
 */
function cardShaped(groups: readonly Group[], from: number, to: number, digits: number): boolean {
  if (digits < MIN_DIGITS || digits > MAX_DIGITS) return false;
  if (from === to) return true;
  const first = groups[from]!;
  if (first.end - first.start !== 4) return false;
  for (let g = from + 1; g <= to; g++) {
    const len = groups[g]!.end - groups[g]!.start;
    if (len > 6 || (len < 3 && g < to)) return false;
  }
  return true;
}

/** Keeps the last four digits (as receipts do, and as PCI DSS allows); separators stay where they were. */
export function maskCard(number: string): string {
  let keep = 4;
  let out = "";
  for (let i = number.length - 1; i >= 0; i--) {
    const ch = number[i]!;
    if (ch === " " || ch === "-") out = ch + out;
    else if (keep > 0) {
      out = ch + out;
      keep--;
    } else out = "*" + out;
  }
  return out;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57; // NaN (out of range) is not
}
function isSep(c: number): boolean {
  return c === 32 || c === 45;
}

function findInRun(text: string, runStart: number, runEnd: number, out: Span[]): void {
  const groups: Group[] = [];
  let s = runStart;
  for (let i = runStart; i <= runEnd; i++) {
    const c = i < runEnd ? text.charCodeAt(i) : 32;
    if (c === 32 || c === 45) {
      groups.push({ start: s, end: i });
      s = i + 1;
    }
  }
  let i = 0;
  while (i < groups.length) {
    const first = text.charCodeAt(groups[i]!.start);
    // No payment network issues numbers starting with 0 or 1 (1 is UATP only); skipping them keeps 13-digit
    // millisecond timestamps and snowflake ids from being masked.
    let found = -1;
    if (first > 49) {
      // Longest card-shaped window first, so a number followed by a short group is masked whole.
      let digits = 0;
      const ends: number[] = [];
      for (let j = i; j < groups.length && digits <= MAX_DIGITS; j++) {
        digits += groups[j]!.end - groups[j]!.start;
        if (cardShaped(groups, i, j, digits)) ends.push(j);
      }
      for (let k = ends.length - 1; k >= 0 && found < 0; k--) {
        const j = ends[k]!;
        const number = text.slice(groups[i]!.start, groups[j]!.end);
        if (luhnValid(number.replace(/[ -]/g, ""))) found = j;
      }
    }
    if (found < 0) {
      i++;
      continue;
    }
    const start = groups[i]!.start;
    const end = groups[found]!.end;
    out.push({ start, end, replacement: maskCard(text.slice(start, end)), detector: "credit_card" });
    i = found + 1;
  }
}

export const creditCard: Detector = {
  name: "credit_card",
  mayContain: (text) => TRIGGER.test(text),
  minLength: MIN_DIGITS,
  find(text, out) {
    // Each maximal run of digits joined by single spaces or dashes is cut into card-shaped windows.
    TRIGGER_ALL.lastIndex = 0;
    for (let m = TRIGGER_ALL.exec(text); m; m = TRIGGER_ALL.exec(text)) {
      let start = m.index;
      let end = m.index + m[0].length;
      for (;;) {
        if (isDigit(text.charCodeAt(start - 1))) start--;
        else if (isSep(text.charCodeAt(start - 1)) && isDigit(text.charCodeAt(start - 2))) start -= 2;
        else break;
      }
      for (;;) {
        if (isDigit(text.charCodeAt(end))) end++;
        else if (isSep(text.charCodeAt(end)) && isDigit(text.charCodeAt(end + 1))) end += 2;
        else break;
      }
      if (end - start >= MIN_DIGITS) findInRun(text, start, end, out);
      TRIGGER_ALL.lastIndex = end;
    }
  },
};
