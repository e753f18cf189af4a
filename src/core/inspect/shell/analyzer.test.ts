import { beforeAll, describe, expect, it } from "vitest";
import { analyzeShell, loadShellAnalyzer, SHELL_LIMITS, type ShellAnalyzer } from "./index.js";

let shell: ShellAnalyzer;
beforeAll(async () => {
  shell = await loadShellAnalyzer();
});

const names = (line: string) => analyzeShell(line).commands.map((c) => c.name);

describe("shell analysis: structure", () => {
  it("finds every simple command of ;, &&, || chains and newlines", () => {
    expect(names("ls -la; cat a && rm b || echo c")).toEqual(["ls", "cat", "rm", "echo"]);
    expect(names("ls\nrm -rf /tmp/x\n")).toEqual(["ls", "rm"]);
  });

  it("gives argv with quotes removed and each pipeline's text", () => {
    const facts = analyzeShell(`grep -r "two words" src | sort | uniq -c`);
    expect(facts.commands[0]?.argv).toEqual(["grep", "-r", "two words", "src"]);
    expect(facts.pipelines).toContain("grep -r two words src | sort | uniq -c");
    expect(facts.pipelines).toContain("uniq -c");
    expect(facts.unparseable).toBeUndefined();
  });

  it("reports command and process substitutions and the commands inside them", () => {
    const r = shell.analyze("echo `id` $(whoami) <(date)");
    expect(r.substitutions).toEqual(["`id`", "$(whoami)", "<(date)"]);
    expect(r.facts.commands.map((c) => c.name)).toEqual(["echo", "id", "whoami", "date"]);
  });

  it("looks inside functions, subshells, loops and conditionals", () => {
    expect(
      names("f() { rm -rf /; }; (shutdown now); for i in 1; do reboot; done; if true; then mkfs /dev/x; fi"),
    ).toEqual(["rm", "shutdown", "reboot", "true", "mkfs"]);
  });

  it("adds redirections to the command's pattern text", () => {
    expect(analyzeShell("echo x > /dev/sda").pipelines).toContain("echo x > /dev/sda");
  });

  it("an empty line has no commands and is parseable", () => {
    expect(analyzeShell("   ")).toMatchObject({ commands: [], pipelines: [] });
    expect(analyzeShell("").unparseable).toBeUndefined();
  });
});

describe("shell analysis: unparseable and incomplete", () => {
  it("a syntax error is unparseable with a position", () => {
    const r = shell.analyze("echo )(");
    expect(r.facts.unparseable?.reason).toMatch(/syntax error at line 1/);
  });

  it("an unfinished construct is incomplete (the shell waits for more lines)", () => {
    for (const line of ["for i in 1 2; do", 'echo "abc', "ls &&", "cat <<EOF"]) {
      const r = shell.analyze(line);
      expect(r.incomplete, line).toBe(true);
      expect(r.facts.unparseable, line).toBeDefined();
    }
    expect(shell.analyze("for i in 1 2; do echo $i; done").incomplete).toBe(false);
  });

  it("a dynamic command name fails closed", () => {
    expect(analyzeShell("$CMD -rf /").unparseable?.reason).toMatch(/only known at run time: \$CMD/);
    expect(analyzeShell("$(cat /tmp/cmd) -rf /").unparseable).toBeDefined();
    expect(analyzeShell('bash -c "$SCRIPT"').unparseable?.reason).toMatch(/bash -c runs a script only known/);
  });

  it("is bounded: length, nesting depth, command count", () => {
    expect(analyzeShell("x".repeat(SHELL_LIMITS.maxLength + 1)).unparseable?.reason).toMatch(/longer than/);
    let nested = "rm -rf /";
    for (let i = 0; i < SHELL_LIMITS.maxDepth + 2; i++) nested = `bash -c ${JSON.stringify(nested)}`;
    expect(analyzeShell(nested).unparseable?.reason).toMatch(/nested more than/);
    expect(
      analyzeShell(
        Array(SHELL_LIMITS.maxCommands + 5)
          .fill("true")
          .join(";"),
      ).unparseable?.reason,
    ).toMatch(/more than \d+ commands/);
  });
});
