import type { WordValue } from "./words.js";

/**
 * Commands that run another command: what they run must be checked like a command typed directly, or
 * `sudo rm -rf /` would pass a rule about `rm`. Each entry knows which options take a value, so the inner
 * command starts at the right word.
 */
export type Inner =
  /** Another command's argv (sudo, env, xargs, nice, timeout, find -exec...). */
  | { kind: "argv"; argv: WordValue[]; via: string }
  /** Shell source to parse again (bash -c, eval, su -c, env -S). */
  | { kind: "script"; script: WordValue; via: string };

export const SHELLS = new Set(["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox-sh", "fish", "rbash"]);

interface OptionSpec {
  /** Short options that consume the next word (or the rest of their cluster). */
  withValue: string;
  /** Long options that consume the next word unless written `--opt=value`. */
  longWithValue?: readonly string[];
  /** Words to skip after the options before the command (timeout's DURATION). */
  positional?: number;
}

const WRAPPERS: Record<string, OptionSpec> = {
  sudo: { withValue: "ugCDhprtUTc", longWithValue: ["--user", "--group", "--chdir", "--host", "--prompt", "--role"] },
  doas: { withValue: "uC" },
  nice: { withValue: "n", longWithValue: ["--adjustment"] },
  ionice: { withValue: "cnp", longWithValue: ["--class", "--classdata", "--pid"] },
  nohup: { withValue: "" },
  setsid: { withValue: "" },
  time: { withValue: "fo", longWithValue: ["--format", "--output"] },
  timeout: { withValue: "sk", longWithValue: ["--signal", "--kill-after"], positional: 1 },
  stdbuf: { withValue: "ioe", longWithValue: ["--input", "--output", "--error"] },
  exec: { withValue: "a" },
  command: { withValue: "" },
  builtin: { withValue: "" },
  chrt: { withValue: "", positional: 1 },
  xargs: {
    withValue: "EeIiLlnPsad",
    longWithValue: [
      "--eof",
      "--replace",
      "--max-lines",
      "--max-args",
      "--max-procs",
      "--max-chars",
      "--arg-file",
      "--delimiter",
    ],
  },
  watch: { withValue: "nd", longWithValue: ["--interval", "--differences"] },
  busybox: { withValue: "" },
  strace: { withValue: "eoOpsuEaPSX" },
  ltrace: { withValue: "eoOpsuEaS" },
  flock: { withValue: "wEc", positional: 1 },
  chroot: { withValue: "", positional: 1 },
  unbuffer: { withValue: "" },
};

function basename(name: string): string {
  const slash = name.lastIndexOf("/");
  return slash >= 0 ? name.slice(slash + 1) : name;
}

/** Index of the first word after the options (and positionals) of a wrapper, or -1. */
function skipOptions(argv: readonly WordValue[], spec: OptionSpec, start = 1): number {
  let i = start;
  while (i < argv.length) {
    const word = (argv[i] as WordValue).text;
    if (word === "--") {
      i++;
      break;
    }
    if (word.startsWith("--")) {
      const takes = spec.longWithValue?.some((l) => word === l) ?? false;
      i += takes ? 2 : 1;
      continue;
    }
    if (word.startsWith("-") && word.length > 1) {
      // a cluster such as -nu root: the first option that takes a value consumes the rest or the next word
      let consumed = 1;
      for (let k = 1; k < word.length; k++) {
        if (spec.withValue.includes(word[k] as string)) {
          if (k === word.length - 1) consumed = 2;
          break;
        }
      }
      i += consumed;
      continue;
    }
    break;
  }
  return Math.min(i + (spec.positional ?? 0), argv.length);
}

/** `env [-i] [-u NAME] [NAME=VALUE]... CMD`, and `env -S "CMD ARGS"` which splits a string into a command. */
function envInner(argv: readonly WordValue[]): Inner[] {
  let i = 1;
  while (i < argv.length) {
    const word = (argv[i] as WordValue).text;
    if (word === "-S" || word === "--split-string") {
      const script = argv[i + 1];
      return script ? [{ kind: "script", script, via: "env -S" }] : [];
    }
    if (word.startsWith("-S") || word.startsWith("--split-string=")) {
      const text = word.startsWith("-S") ? word.slice(2) : word.slice(word.indexOf("=") + 1);
      return [{ kind: "script", script: { text, dynamic: (argv[i] as WordValue).dynamic }, via: "env -S" }];
    }
    if (word === "-u" || word === "-C" || word === "--unset" || word === "--chdir") i += 2;
    else if (word.startsWith("-") || /^[A-Za-z_][A-Za-z0-9_]*=/.test(word)) i++;
    else break;
  }
  return i < argv.length ? [{ kind: "argv", argv: argv.slice(i), via: "env" }] : [];
}

/** `bash -c SCRIPT`, `sh -xc SCRIPT`, `bash -o pipefail -c SCRIPT`: the script is parsed again. */
function shellInner(argv: readonly WordValue[], name: string): Inner[] {
  for (let i = 1; i < argv.length; i++) {
    const word = (argv[i] as WordValue).text;
    if (word === "-o" || word === "+o" || word === "--rcfile" || word === "--init-file") {
      i++;
      continue;
    }
    if (/^-[A-Za-z]*c[A-Za-z]*$/.test(word)) {
      const script = argv[i + 1];
      return script ? [{ kind: "script", script, via: `${name} -c` }] : [];
    }
    if (!word.startsWith("-") && !word.startsWith("+")) return [];
  }
  return [];
}

/** `find ... -exec CMD {} ;` (and -execdir, -ok, -okdir): each such command runs once per file. */
function findInner(argv: readonly WordValue[]): Inner[] {
  const inner: Inner[] = [];
  for (let i = 1; i < argv.length; i++) {
    if (!/^-(exec|execdir|ok|okdir)$/.test((argv[i] as WordValue).text)) continue;
    let end = i + 1;
    while (end < argv.length && !/^[;+]$/.test((argv[end] as WordValue).text)) end++;
    if (end > i + 1) inner.push({ kind: "argv", argv: argv.slice(i + 1, end), via: "find -exec" });
    i = end;
  }
  return inner;
}

/** What a command runs on the caller's behalf, if it is one of the known wrappers; [] otherwise. */
export function innerCommands(argv: readonly WordValue[]): Inner[] {
  const first = argv[0];
  if (!first || first.dynamic) return [];
  const name = basename(first.text);
  if (SHELLS.has(name)) return shellInner(argv, name);
  switch (name) {
    case "env":
      return envInner(argv);
    case "eval":
      return argv.length > 1 ? [{ kind: "script", script: joinWords(argv.slice(1)), via: "eval" }] : [];
    case "su": {
      const c = argv.findIndex((w, i) => i > 0 && (w.text === "-c" || w.text === "--command"));
      const script = c > 0 ? argv[c + 1] : undefined;
      return script ? [{ kind: "script", script, via: "su -c" }] : [];
    }
    case "find":
      return findInner(argv);
  }
  const spec = WRAPPERS[name];
  if (!spec) return [];
  // `command -v rm` and `sudo -l` only look things up
  if (name === "command" && argv.some((w) => w.text === "-v" || w.text === "-V")) return [];
  const at = skipOptions(argv, spec);
  return at < argv.length ? [{ kind: "argv", argv: argv.slice(at), via: name }] : [];
}

export function joinWords(words: readonly WordValue[]): WordValue {
  return { text: words.map((w) => w.text).join(" "), dynamic: words.some((w) => w.dynamic) };
}

export { basename };
