import type { Detector, Span } from "./types.js";

export const EMAIL_MASK = "****@****";

// Local part: the practical subset of RFC 5322 atext. Quotes, `=`, `/`, `{`, `|` are left out on purpose: they
// usually delimit an address (`email='a@b.c'`, `?to=a@b.c`) rather than belong to it.
const LOCAL_PUNCT = new Set("._%+!#$&*?^~-".split("").map((c) => c.charCodeAt(0)));

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c >= 0x80;
}
// Any non-ASCII unit counts as part of an address (internationalized addresses). It also keeps the string and
// the latin1 byte view in step: a UTF-8 sequence is all bytes >= 0x80, so a span never splits a character.
function isLocalChar(c: number): boolean {
  return isAlnum(c) || c >= 0x80 || LOCAL_PUNCT.has(c);
}
function isLabelChar(c: number): boolean {
  return isAlnum(c) || c === 45 || c >= 0x80;
}

/** End of the address's domain (after the TLD), or -1 when what follows `@` is not a dotted domain with a TLD. */
function domainEnd(text: string, from: number): number {
  const labels: number[] = []; // start, end pairs
  let pos = from;
  for (;;) {
    const s = pos;
    while (pos < text.length && isLabelChar(text.charCodeAt(pos))) pos++;
    if (pos === s) break;
    labels.push(s, pos);
    if (text.charCodeAt(pos) === 46 && pos + 1 < text.length && isLabelChar(text.charCodeAt(pos + 1))) pos++;
    else break;
  }
  // Walk back to the last label that can be a TLD (letters, or punycode), cutting trailing junk such as
  // `a@b.com-x` or `a@b.com.5` rather than giving up on the address.
  for (let m = labels.length / 2; m >= 2; m--) {
    const s = labels[2 * m - 2]!;
    const e = labels[2 * m - 1]!;
    if (text.startsWith("xn--", s) && e - s > 4) return e;
    let run = s;
    while (run < e && isLetter(text.charCodeAt(run))) run++;
    if (run - s >= 2) return run;
  }
  return -1;
}

export const email: Detector = {
  name: "email",
  mayContain: (text) => text.includes("@"),
  minLength: 6, // a@b.cd
  find(text, out: Span[]) {
    let at = text.indexOf("@");
    while (at !== -1) {
      let start = at;
      while (start > 0 && isLocalChar(text.charCodeAt(start - 1))) start--;
      while (start < at && text.charCodeAt(start) === 46) start++; // a local part never starts with a dot
      const end = start < at ? domainEnd(text, at + 1) : -1;
      if (end < 0) {
        at = text.indexOf("@", at + 1);
        continue;
      }
      out.push({ start, end, replacement: EMAIL_MASK, detector: "email" });
      at = text.indexOf("@", end);
    }
  },
};
