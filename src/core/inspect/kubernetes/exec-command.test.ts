import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { loadShellAnalyzer, type ShellAnalyzer } from "../shell/index.js";
import { execCommand, execShellLine, quoteShellWord } from "./index.js";

let shell: ShellAnalyzer;
beforeAll(async () => {
  shell = await loadShellAnalyzer();
});

function lineOf(argv: string[]): string {
  const r = execShellLine(argv);
  if (!("line" in r)) throw new Error(r.unparseable);
  return r.line;
}

describe("execCommand", () => {
  it("gives the command parameters in order", () => {
    const q = new URLSearchParams(
      "command=sh&container=app&command=-c&stdin=true&command=echo%20hi%20%3E%20%2Ftmp%2Fx",
    );
    expect(execCommand(q)).toEqual(["sh", "-c", "echo hi > /tmp/x"]);
  });

  it("is undefined without a command (attach, a malformed exec)", () => {
    expect(execCommand(new URLSearchParams("container=app&stdin=true"))).toBeUndefined();
  });
});

describe("execShellLine", () => {
  it("quotes only what a shell would read differently", () => {
    expect(lineOf(["ls", "-la", "/var/log"])).toBe("ls -la /var/log");
    expect(lineOf(["rm", "-rf", "/tmp/x y"])).toBe("rm -rf '/tmp/x y'");
    expect(lineOf(["echo", "it's", "", "$HOME", "a;b", "*"])).toBe(`echo 'it'\\''s' '' '$HOME' 'a;b' '*'`);
    expect(lineOf(["A=b", "x"])).toBe("'A=b' x");
    expect(lineOf(["if", "then"])).toBe("'if' then");
    expect(quoteShellWord("--opt=1")).toBe("'--opt=1'");
  });

  it("refuses an empty argv and a NUL byte", () => {
    expect(execShellLine([])).toHaveProperty("unparseable");
    expect(execShellLine(["rm\0x", "/"])).toHaveProperty("unparseable");
  });

  it("the shell analyzer reads sh -c 'rm -rf /' as rm", () => {
    const facts = shell.analyze(lineOf(["sh", "-c", "rm -rf /"])).facts;
    expect(facts.unparseable).toBeUndefined();
    expect(facts.commands.map((c) => c.name)).toContain("rm");
    expect(facts.commands.find((c) => c.name === "rm")?.argv).toEqual(["rm", "-rf", "/"]);
  });

  it("the shell analyzer reads rm -rf '/tmp/x y' with the same argv", () => {
    const facts = shell.analyze(lineOf(["rm", "-rf", "/tmp/x y"])).facts;
    expect(facts.commands).toEqual([{ name: "rm", argv: ["rm", "-rf", "/tmp/x y"] }]);
  });

  it("property: any argv without NUL reads back as itself", () => {
    const arg = fc.string({ unit: "binary", maxLength: 12 }).filter((s) => !s.includes("\0"));
    const name = fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/);
    fc.assert(
      fc.property(name, fc.array(arg, { maxLength: 5 }), (cmd, args) => {
        const argv = [cmd, ...args];
        const facts = shell.analyze(lineOf(argv)).facts;
        expect(facts.unparseable).toBeUndefined();
        expect(facts.commands[0]).toEqual({ name: cmd, argv });
      }),
      { numRuns: 100 },
    );
  });
});
