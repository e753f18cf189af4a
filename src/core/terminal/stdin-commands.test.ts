import { describe, expect, it } from "vitest";
import { loadShellAnalyzer } from "../inspect/shell/index.js";
import { readsCommandsFromStdin } from "./stdin-commands.js";

describe("readsCommandsFromStdin", () => {
  it("finds a shell that reads its commands from stdin, wherever it sits in the command", async () => {
    const analyzer = await loadShellAnalyzer();
    const reads = (line: string) => readsCommandsFromStdin(analyzer.analyze(line).facts.commands);
    for (const line of [
      "bash",
      "sh -i",
      "bash -s",
      "/bin/sh",
      "sh -c sh",
      "sudo bash",
      "env bash -l",
      "busybox sh",
      "bash -o pipefail",
      "bash --norc",
    ])
      expect(reads(line), line).toBe(true);
    for (const line of [
      "bash -c 'ls'",
      "sh -ec 'ls'",
      "bash script.sh",
      "cat",
      "python3",
      "ls -l",
      "busybox ls",
      "tar xf -",
    ])
      expect(reads(line), line).toBe(false);
  });
});
