import { describe, expect, it } from "vitest";
import { Masker } from "../masker.js";

const m = Masker.from({ detectors: ["email"] });
const mask = (s: string) => m.maskText(s)?.text;

describe("email", () => {
  it("masks whole addresses to a fixed form", () => {
    expect(mask("bob@example.com")).toBe("****@****");
    expect(mask("first.last+tag@mail.example.co.uk")).toBe("****@****");
  });

  it("finds addresses inside longer text and keeps the text around them", () => {
    expect(mask("contact: Bob <bob.smith@example.org>, then carol@x.io.")).toBe(
      "contact: Bob <****@****>, then ****@****.",
    );
    expect(mask(`{"email":"a_b-c@sub.domain.dev","n":1}`)).toBe(`{"email":"****@****","n":1}`);
    expect(mask("email='bob@example.com'")).toBe("email='****@****'");
    expect(mask("https://x.test/?to=bob@example.com&x=1")).toBe("https://x.test/?to=****@****&x=1");
  });

  it("cuts trailing junk after the TLD instead of giving up", () => {
    expect(mask("bob@example.com-draft")).toBe("****@****-draft");
    expect(mask("bob@example.com.5")).toBe("****@****.5");
    expect(mask("see bob@example.com...")).toBe("see ****@****...");
  });

  it("handles internationalized addresses and punycode", () => {
    expect(mask("josé@exämple.com ok")).toBe("****@**** ok");
    expect(mask("a@xn--80ak6aa92e.xn--p1ai")).toBe("****@****");
  });

  it("leaves text that is not an address alone", () => {
    expect(m.maskText("user@localhost")).toBeUndefined();
    expect(m.maskText("@mention and a @ b.com")).toBeUndefined();
    expect(m.maskText("price @ 3.50")).toBeUndefined();
    expect(m.maskText("a@b.c")).toBeUndefined();
    expect(m.maskText("x@1.2.3.4")).toBeUndefined();
  });

  it("counts every hit", () => {
    expect(m.maskText("a@b.io b@c.io c@d.io")).toEqual({
      text: "****@**** ****@**** ****@****",
      hits: [{ detector: "email", count: 3 }],
    });
  });
});
