import type { Detector, Span } from "./types.js";

// Access key ids: AKIA (long-term) and ASIA (temporary, STS). Other AWS unique-id prefixes name no credential.
const KEY_ID = /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/y;
const KEY_ID_TRIGGER = /A[KS]IA/g;
// A secret access key is 40 base64 characters with nothing recognisable about it, so it is only found next to a
// label: aws_secret_access_key = ..., AWS_SECRET_ACCESS_KEY=..., "SecretAccessKey": "...", secret_key: ...
// (An `aws_` prefix needs no matching: the label is found from `secret` on.)
const SECRET = /secret[_.-]?(?:access[_.-]?)?key["']?\s*(?:=>|[:=])\s*["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/iy;
const SECRET_TRIGGER = /[Ss][Ee][Cc][Rr][Ee][Tt]/g;
const TRIGGER = /A[KS]IA|[Ss][Ee][Cc][Rr][Ee][Tt]/;
const SECRET_MASK = "********";

export const awsKey: Detector = {
  name: "aws_key",
  mayContain: (text) => TRIGGER.test(text),
  minLength: 20,
  find(text, out: Span[]) {
    // Quantifier-free triggers, then anchored (sticky) matches at each: much faster than scanning with the full
    // patterns.
    KEY_ID_TRIGGER.lastIndex = 0;
    for (let t = KEY_ID_TRIGGER.exec(text); t; t = KEY_ID_TRIGGER.exec(text)) {
      KEY_ID.lastIndex = t.index;
      const m = KEY_ID.exec(text);
      if (!m) continue;
      // The prefix says which kind of key it was; the id itself identifies the account and user.
      out.push({
        start: m.index,
        end: m.index + 20,
        replacement: m[0].slice(0, 4) + "*".repeat(16),
        detector: "aws_key",
      });
    }
    SECRET_TRIGGER.lastIndex = 0;
    for (let t = SECRET_TRIGGER.exec(text); t; t = SECRET_TRIGGER.exec(text)) {
      SECRET.lastIndex = t.index;
      const m = SECRET.exec(text);
      if (!m) continue;
      const end = m.index + m[0].length;
      out.push({ start: end - 40, end, replacement: SECRET_MASK, detector: "aws_key" });
    }
  },
};
