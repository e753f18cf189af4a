import { anyCase, type Detector, type Span } from "./types.js";

// Access key ids: AKIA (long-term) and ASIA (temporary, STS). Other AWS unique-id prefixes name no credential.
const KEY_ID = /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g;
// A secret access key is 40 base64 characters with nothing recognisable about it, so it is only found next to a
// label: aws_secret_access_key = ..., AWS_SECRET_ACCESS_KEY=..., "SecretAccessKey": "...", secret_key: ...
const SECRET =
  /(?:aws[_.-]?)?secret[_.-]?(?:access[_.-]?)?key["']?\s*(?:=>|[:=])\s*["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/gi;
const SECRET_MASK = "********";

export const awsKey: Detector = {
  name: "aws_key",
  trigger: `A[KS]IA[A-Z0-9]{16}|${anyCase("secret")}`,
  minLength: 20,
  find(text, out: Span[]) {
    KEY_ID.lastIndex = 0;
    for (let m = KEY_ID.exec(text); m; m = KEY_ID.exec(text)) {
      // The prefix says which kind of key it was; the id itself identifies the account and user.
      out.push({
        start: m.index,
        end: m.index + 20,
        replacement: m[0].slice(0, 4) + "*".repeat(16),
        detector: "aws_key",
      });
    }
    SECRET.lastIndex = 0;
    for (let m = SECRET.exec(text); m; m = SECRET.exec(text)) {
      const end = m.index + m[0].length;
      out.push({ start: end - 40, end, replacement: SECRET_MASK, detector: "aws_key" });
    }
  },
};
