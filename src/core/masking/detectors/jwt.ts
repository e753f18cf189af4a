import type { Detector, Span } from "./types.js";

const SEG = "[A-Za-z0-9_-]";
// A JOSE header is a JSON object, so its base64url starts with `ey` (`{"`, `{ `) or `ew` (`{` + newline). Three
// segments is a JWS (the signature is empty for alg "none"); five is a JWE.
// `{"`, `{ `, `{\n`, `{\r`, `{\t` encoded.
const TRIGGER = /ey[JA]|ew[ko0]/;
const TRIGGER_ALL = /ey[JA]|ew[ko0]/g;
// Matched anchored (sticky) where the trigger was found.
const CANDIDATE = new RegExp(`(?<!${SEG})(e[wy]${SEG}{12,})((?:\\.${SEG}*){2}(?:(?:\\.${SEG}*){2})?)(?!${SEG})`, "y");

/** Dotted base64url is everywhere (hostnames, versions); only a segment that decodes to a JOSE header counts. */
export function isJoseHeader(segment: string): boolean {
  if (segment.length % 4 === 1) return false;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
  } catch {
    return false;
  }
  return typeof header === "object" && header !== null && typeof (header as { alg?: unknown }).alg === "string";
}

export const jwt: Detector = {
  name: "jwt",
  mayContain: (text) => TRIGGER.test(text),
  minLength: 16,
  find(text, out: Span[]) {
    TRIGGER_ALL.lastIndex = 0;
    for (let t = TRIGGER_ALL.exec(text); t; t = TRIGGER_ALL.exec(text)) {
      CANDIDATE.lastIndex = t.index;
      const m = CANDIDATE.exec(text);
      if (!m) continue;
      const header = m[1]!;
      const rest = m[2]!;
      // The payload segment must not be empty (a detached payload holds no claims, but keep the rule simple).
      if (rest.startsWith("..") || !isJoseHeader(header)) continue;
      // The header is kept (alg, kid, typ: no secret, and it tells the reader what was there); claims and
      // signature are not.
      const segments = rest.split(".").length - 1;
      out.push({
        start: m.index,
        end: m.index + m[0].length,
        replacement: header + ".********".repeat(segments),
        detector: "jwt",
      });
      TRIGGER_ALL.lastIndex = m.index + m[0].length;
    }
  },
};
