import type { Detector, Span } from "./types.js";

const AN = "[A-Za-z0-9]";
// Electronic form (`DE89370400440532013000`) or print form in groups of four (`DE89 3704 0044 0532 0130 00`),
// standing alone: an IBAN glued to other letters or digits is not one.
const CANDIDATE = new RegExp(
  `(?<!${AN})[A-Za-z]{2}\\d{2}(?:${AN}{11,30}|(?: ${AN}{4}){2,7}(?: ${AN}{1,4})?)(?!${AN})`,
  "g",
);

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
  trigger: `[A-Za-z]{2}\\d{2} ?${AN}{4}`,
  minLength: 15,
  find(text, out: Span[]) {
    CANDIDATE.lastIndex = 0;
    for (let m = CANDIDATE.exec(text); m; m = CANDIDATE.exec(text)) {
      // A grouped candidate may have swallowed a following four-letter word: try shorter prefixes too.
      const groups = m[0].split(" ");
      let found = "";
      for (let n = groups.length; n >= 1 && !found; n--) {
        const part = groups.slice(0, n);
        if (ibanValid(part.join(""))) found = part.join(" ");
      }
      if (!found) {
        // The next group may start a real IBAN (`AB12 DE89 3704 ...`).
        CANDIDATE.lastIndex = m.index + 1;
        continue;
      }
      out.push({ start: m.index, end: m.index + found.length, replacement: maskIban(found), detector: "iban" });
      CANDIDATE.lastIndex = m.index + found.length;
    }
  },
};
