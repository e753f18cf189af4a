import type { Detector, Span } from "./types.js";

// RSA, EC, DSA, OPENSSH, ENCRYPTED, plain PKCS#8 and PGP ("PGP PRIVATE KEY BLOCK").
const BEGIN = /-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----/g;
const END = /-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/g;
const MASK = "********";

/** The line break the block uses, so the masked block keeps its shape (also inside JSON-escaped strings). */
function lineBreak(text: string, at: number): string {
  for (const eol of ["\r\n", "\n", "\\r\\n", "\\n"]) if (text.startsWith(eol, at)) return eol;
  return " ";
}

export const privateKey: Detector = {
  name: "private_key",
  mayContain: (text) => text.includes("-----BEGIN "),
  minLength: 30,
  find(text, out: Span[]) {
    BEGIN.lastIndex = 0;
    for (let m = BEGIN.exec(text); m; m = BEGIN.exec(text)) {
      const afterBegin = m.index + m[0].length;
      const eol = lineBreak(text, afterBegin);
      END.lastIndex = afterBegin;
      const end = END.exec(text);
      // Without an END marker the value was cut (a LIMIT, a terminal chunk): everything after BEGIN is key
      // material, so the mask runs to the end of the value.
      const stop = end ? end.index + end[0].length : text.length;
      const replacement = m[0] + eol + MASK + (end ? eol + end[0] : "");
      out.push({ start: m.index, end: stop, replacement, detector: "private_key" });
      BEGIN.lastIndex = stop;
    }
  },
};
