import { describe, expect, it } from "vitest";
import { Masker } from "../masker.js";

const m = Masker.from({ detectors: ["aws_key"] });
const mask = (s: string) => m.maskText(s)?.text;
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

describe("aws_key", () => {
  it("masks access key ids, keeping the kind prefix", () => {
    expect(mask("AKIAIOSFODNN7EXAMPLE")).toBe("AKIA****************");
    expect(mask("id=ASIAY34FZKBOKMUTVV7A;")).toBe("id=ASIA****************;");
  });

  it("masks labelled secret keys", () => {
    expect(mask(`aws_secret_access_key = ${SECRET}`)).toBe("aws_secret_access_key = ********");
    expect(mask(`export AWS_SECRET_ACCESS_KEY=${SECRET}\n`)).toBe("export AWS_SECRET_ACCESS_KEY=********\n");
    expect(mask(`{"SecretAccessKey": "${SECRET}", "x": 1}`)).toBe(`{"SecretAccessKey": "********", "x": 1}`);
    expect(mask(`secret_key: '${SECRET}'`)).toBe("secret_key: '********'");
  });

  it("masks both in a credentials file", () => {
    const file = `[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = ${SECRET}\n`;
    const r = m.maskText(file);
    expect(r?.text).toBe("[default]\naws_access_key_id = AKIA****************\naws_secret_access_key = ********\n");
    expect(r?.hits).toEqual([{ detector: "aws_key", count: 2 }]);
  });

  it("leaves lookalikes alone", () => {
    expect(m.maskText("AKIAIOSFODNN7EXAMPL")).toBeUndefined(); // 19 characters
    expect(m.maskText("AKIAIOSFODNN7EXAMPLEX")).toBeUndefined(); // part of a longer word
    expect(m.maskText("AIDAIOSFODNN7EXAMPLE")).toBeUndefined(); // a user id, not a key
    expect(m.maskText(SECRET)).toBeUndefined(); // unlabelled: indistinguishable from any base64
    expect(m.maskText(`secret = ${SECRET}`)).toBeUndefined(); // not a key label
    expect(m.maskText(`aws_secret_access_key = ${SECRET}AB`)).toBeUndefined(); // 42 characters
  });
});
