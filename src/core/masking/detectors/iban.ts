import type { Detector, Span } from "./types.js";

const AN = "[A-Za-z0-9]";
// Electronic form (`DE89370400440532013000`) or print form in groups of four (`DE89 3704 0044 0532 0130 00`),
// standing alone: an IBAN glued to other letters or digits is not one.
// Found by a quantifier-free trigger, then matched anchored (sticky) at that place: a `(?<!...)[A-Za-z]{2}...`
// scan over prose is several times slower.
const TRIGGER = /[A-Za-z][A-Za-z]\d\d/;
const TRIGGER_ALL = /[A-Za-z][A-Za-z]\d\d/g;
const CANDIDATE = new RegExp(`[A-Za-z]{2}\\d{2}(?:${AN}{11,30}|(?: ${AN}{4}){2,7}(?: ${AN}{1,4})?)(?!${AN})`, "y");

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122); // NaN (out of range) is not
}

/** Cheap shape check before the regexp: a standalone run of 15-34 characters, or a first group of four. */
function plausibleAt(text: string, i: number): boolean {
  if (isAlnum(text.charCodeAt(i - 1))) return false; // `XDE89...` is part of a longer word
  let end = i + 4;
  while (end - i <= 34 && isAlnum(text.charCodeAt(end))) end++;
  return end - i === 4 ? text.charCodeAt(end) === 32 : end - i >= 15 && end - i <= 34;
}

/** ISO 13616: move the first four characters to the end, letters to 10..35, and the number mod 97 must be 1. */
export function ibanValid(iban: string): boolean {
  const s = iban.toUpperCase();
  if (s.length < 15 || s.length > 34) return false;
  const check = Number(s.slice(2, 4));
  if (check < 2 || check > 98) return false; // 98 - (x mod 97) is never 00, 01 or 99
  let r = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt((k + 4) % s.length);
    if (c >= 48 && c <= 57) r = (r * 10 + c - 48) % 97;
    else if (c >= 65 && c <= 90) r = (r * 100 + c - 55) % 97;
    else return false;
  }
  return r === 1;
}

/** Keeps the country code (not identifying) and the grouping; every other character becomes `*`. */
function maskIban(text: string): string {
  return text.slice(0, 2) + text.slice(2).replace(/[A-Za-z0-9]/g, "*");
}

export const iban: Detector = {
  name: "iban",
  mayContain: (text) => TRIGGER.test(text),
  minLength: 15,
  find(text, out: Span[]) {
    TRIGGER_ALL.lastIndex = 0;
    for (let t = TRIGGER_ALL.exec(text); t; t = TRIGGER_ALL.exec(text)) {
      // On failure, go on from the next character: the trigger may have started inside a longer word.
      let m: RegExpExecArray | null = null;
      if (plausibleAt(text, t.index)) {
        CANDIDATE.lastIndex = t.index;
        m = CANDIDATE.exec(text);
      }
      if (!m) {
        TRIGGER_ALL.lastIndex = t.index + 1;
        continue;
      }
      // A grouped candidate may have swallowed a following four-letter word: try shorter prefixes too.
      const groups = m[0].split(" ");
      let found = "";
      for (let n = groups.length; n >= 1 && !found; n--) {
        const part = groups.slice(0, n);
        if (ibanValid(part.join(""))) found = part.join(" ");
      }
      if (!found) {
        // The next group may start a real IBAN (`AB12 DE89 3704 ...`).
        TRIGGER_ALL.lastIndex = m.index + 1;
        continue;
      }
      out.push({ start: m.index, end: m.index + found.length, replacement: maskIban(found), detector: "iban" });
      TRIGGER_ALL.lastIndex = m.index + found.length;
    }
  },
};
