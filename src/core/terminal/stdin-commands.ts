import type { CommandFact } from "../policy/facts.js";

/** Shells that read commands from their stdin when given no command string or script. */
const SHELLS = new Set(["sh", "bash", "zsh", "ash", "dash", "ksh", "mksh", "busybox"]);
/** Options of those shells that take the next argument as their value. */
const WITH_VALUE = new Set(["-o", "+o", "-O", "+O", "--rcfile", "--init-file"]);

/**
 * Whether a command's stdin is shell command lines: a shell started without `-c` and without a script file
 * (`bash`, `sh -i`, `bash -s`, `busybox sh`), wherever it appears in the command (`sh -c sh`, `sudo bash`,
 * `env bash`). Such stdin is typed commands, not data, and is judged line by line like an interactive shell's:
 * otherwise `ssh host bash < script` or `kubectl exec -i pod -- sh -c sh` would run every line unjudged.
 */
export function readsCommandsFromStdin(commands: readonly CommandFact[]): boolean {
  return commands.some((c) => {
    const name = c.name.slice(c.name.lastIndexOf("/") + 1);
    if (!SHELLS.has(name)) return false;
    const args = c.argv.slice(1);
    if (name === "busybox") {
      const applet = args.shift();
      if (applet === undefined || !SHELLS.has(applet)) return false;
    }
    for (let i = 0; i < args.length; i++) {
      const a = args[i] as string;
      if (a === "--") return i === args.length - 1;
      if (WITH_VALUE.has(a)) {
        i++;
        continue;
      }
      if (a.startsWith("--")) continue;
      if (/^[-+][A-Za-z]+$/.test(a)) {
        // -c anywhere in a flag cluster (-ec): the commands come from an argument, not stdin
        if (a.startsWith("-") && a.includes("c")) return false;
        continue;
      }
      return false; // a script file: it reads its commands from there
    }
    return true;
  });
}
