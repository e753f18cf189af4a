import type { Detector, Span } from "./types.js";

const SEG = "[A-Za-z0-9_-]";
// A JOSE header is a JSON object, so its base64url starts with `ey` (`{"`, `{ `) or `ew` (`{` + newline). Three
// segments is a JWS (the signature is empty for alg "none"); five is a JWE.
const CANDIDATE = new RegExp(`(?<!${SEG})(e[wy]${SEG}{12,})((?:\\.${SEG}*){2}(?:(?:\\.${SEG}*){2})?)(?!${SEG})`, "g");

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
  trigger: `e[wy]${SEG}{12,}\\.`,
  minLength: 16,
  find(text, out: Span[]) {
    CANDIDATE.lastIndex = 0;
    for (let m = CANDIDATE.exec(text); m; m = CANDIDATE.exec(text)) {
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
    }
  },
};
