import { beforeAll, describe, expect, it } from "vitest";
import { loadShellAnalyzer, type ShellAnalyzer } from "../inspect/shell/index.js";
import { Masker } from "../masking/index.js";
import { OutputMasker, PARTIAL_LINE_FLUSH_MS } from "./output.js";
import { ShellInput, type LineVerdict } from "./shell-input.js";

let analyzer: ShellAnalyzer;
beforeAll(async () => {
  analyzer = await loadShellAnalyzer();
});

describe("OutputMasker", () => {
  it("catches a secret split across chunks, and flushes a partial line after a short wait", async () => {
    const out: Buffer[] = [];
    const m = new OutputMasker(Masker.from({ detectors: ["credit_card"] }), (b) => out.push(b));
    m.write(Buffer.from("card 4111 1111 "));
    m.write(Buffer.from("1111 1111 ok\nprompt$ "));
    expect(Buffer.concat(out).toString()).not.toContain("4111");
    expect(Buffer.concat(out).toString()).not.toContain("prompt$");
    await new Promise((r) => setTimeout(r, PARTIAL_LINE_FLUSH_MS + 20));
    expect(Buffer.concat(out).toString()).toMatch(/ ok\nprompt\$ $/);
    expect(m.hits).toBe(1);
  });

  it("passes bytes through untouched without detectors", () => {
    const out: Buffer[] = [];
    const chunk = Buffer.from([0xff, 0x00, 0x41]);
    new OutputMasker(undefined, (b) => out.push(b)).write(chunk);
    expect(out[0]).toBe(chunk);
  });
});

function tracker(pty: boolean, deny: (text: string) => boolean, submitFails = false) {
  const target: string[] = [];
  const client: string[] = [];
  const errors: unknown[] = [];
  const submitted: { text: string; unparseable?: string }[] = [];
  const input = new ShellInput({
    pty,
    analyze: (t) => analyzer.analyze(t),
    submit: (text, facts): Promise<LineVerdict> => {
      submitted.push({ text, ...(facts.unparseable ? { unparseable: facts.unparseable.reason } : {}) });
      if (submitFails) return Promise.reject(new Error("gate broke"));
      const bad = deny(text) || facts.unparseable !== undefined;
      return Promise.resolve(bad ? { forward: false, message: "no" } : { forward: true });
    },
    toTarget: (b) => target.push(b.toString("latin1")),
    toClient: (b) => client.push(b.toString()),
    onError: (err) => errors.push(err),
  });
  return { input, target: () => target.join(""), client: () => client.join(""), submitted, errors };
}

describe("ShellInput", () => {
  const rm = (t: string) => t.includes("rm ");

  it("PTY: forwards keystrokes, holds Enter until admitted, cancels a denied line with Ctrl-C", async () => {
    const t = tracker(true, rm);
    t.input.push(Buffer.from("ls -l\rrm -rf /\recho ok\r"));
    await t.input.end();
    expect(t.submitted.map((s) => s.text)).toEqual(["ls -l", "rm -rf /", "echo ok"]);
    expect(t.target()).toBe("ls -l\rrm -rf /\x03echo ok\r");
    expect(t.client()).toContain("gatehouse: no");
  });

  it("PTY: follows backspace, Ctrl-U and Ctrl-W; arrows make the line unparseable", async () => {
    const t = tracker(true, rm);
    t.input.push(Buffer.from("rmx\x7f -rf /\r"));
    t.input.push(Buffer.from("junk\x15echo a b\x17c\r"));
    t.input.push(Buffer.from("echo hi\x1b[D\x1b[Drm \r"));
    await t.input.end();
    expect(t.submitted[0]?.text).toBe("rm -rf /");
    expect(t.submitted[1]?.text).toBe("echo a c");
    expect(t.submitted[2]?.unparseable).toMatch(/cursor or history keys/);
  });

  it("PTY: an unfinished construct is forwarded and submitted with the line that completes it", async () => {
    const t = tracker(true, rm);
    t.input.push(Buffer.from("for i in 1; do\rrm -rf /; done\r"));
    await t.input.end();
    expect(t.submitted.map((s) => s.text)).toEqual(["for i in 1; do\nrm -rf /; done"]);
    expect(t.target()).toBe("for i in 1; do\rrm -rf /; done\x03");
  });

  it("without a PTY whole lines are held: a denied line never reaches the target", async () => {
    const t = tracker(false, rm);
    t.input.push(Buffer.from("echo 1\nrm -rf /\necho 2"));
    await t.input.end();
    expect(t.target()).toBe("echo 1\necho 2\n");
  });

  it("a line whose handling fails goes to onError (not an unhandled rejection), and nothing after it is forwarded", async () => {
    const t = tracker(false, rm, true);
    t.input.push(Buffer.from("echo 1\necho 2\n"));
    await t.input.end();
    expect(t.errors).toHaveLength(1);
    expect(String(t.errors[0])).toMatch(/gate broke/);
    expect(t.target()).toBe("");
    expect(t.submitted.map((s) => s.text)).toEqual(["echo 1"]);
  });
});
