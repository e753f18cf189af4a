import { describe, expect, it } from "vitest";
import { HeldSecrets } from "./held-secrets.js";

const SECRET = "s3cr3t-token-value";

describe("HeldSecrets", () => {
  it("replaces every occurrence in a body", () => {
    const held = new HeldSecrets([SECRET, "short"]);
    expect(held.scrub(Buffer.from(`a ${SECRET} b ${SECRET}`)).toString()).toBe("a ******** b ********");
    // too short to be told from ordinary text: left alone
    expect(held.scrub(Buffer.from("short")).toString()).toBe("short");
  });

  it("finds a secret split across stream chunks at every position, and delays nothing else", () => {
    const held = new HeldSecrets([SECRET]);
    const text = `line one\nthe token is ${SECRET}!\nline three\n`;
    for (let cut = 0; cut <= text.length; cut++) {
      const out: Buffer[] = [];
      const s = held.stream((b) => out.push(Buffer.from(b)));
      s.write(Buffer.from(text.slice(0, cut)));
      s.write(Buffer.from(text.slice(cut)));
      s.end();
      expect(Buffer.concat(out).toString()).toBe("line one\nthe token is ********!\nline three\n");
    }
    const out: string[] = [];
    const s = held.stream((b) => out.push(b.toString()));
    s.write(Buffer.from("plain text\n"));
    expect(out).toEqual(["plain text\n"]);
  });

  it("replaces held credentials in response headers", () => {
    const held = new HeldSecrets([SECRET]);
    expect(
      held.scrubHeaders({
        "x-debug": `auth=Bearer ${SECRET}`,
        "set-cookie": [`a=${SECRET}`, "b=1"],
        "content-length": "5",
      }),
    ).toEqual({
      "x-debug": "auth=Bearer ********",
      "set-cookie": ["a=********", "b=1"],
      "content-length": "5",
    });
  });
});
