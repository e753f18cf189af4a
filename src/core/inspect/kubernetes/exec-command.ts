/**
 * The command of a pods/exec request, and its argv as one shell line, so the shell analyzer (which judges SSH
 * commands) judges `kubectl exec -- rm -rf /` with the same rules.
 */

/** The `command` query parameters of an exec request, in order; undefined when there are none. */
export function execCommand(query: URLSearchParams): string[] | undefined {
  const argv = query.getAll("command");
  return argv.length > 0 ? argv : undefined;
}

// Words a shell reads as they are. `=` is left out: `A=b rm x` would read as an assignment, while exec runs a
// program named `A=b`.
const PLAIN_WORD = /^[A-Za-z0-9_@%+:,./-]+$/;
// Reserved words are syntax only in command position; quoted, they are a plain command name (as exec runs them).
const RESERVED = new Set([
  "!",
  "case",
  "coproc",
  "do",
  "done",
  "elif",
  "else",
  "esac",
  "fi",
  "for",
  "function",
  "if",
  "in",
  "select",
  "then",
  "time",
  "until",
  "while",
]);

/** One argument, quoted so a POSIX shell reads exactly it: plain words bare, anything else in single quotes. */
export function quoteShellWord(word: string, commandPosition = false): string {
  if (PLAIN_WORD.test(word) && !(commandPosition && RESERVED.has(word))) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The argv exec runs, as a shell line that reads back as the same argv. A NUL byte is refused: the container
 * runtime passes C strings, so `rm\0x` runs `rm` while the line would name a command `rm\0x`.
 */
export function execShellLine(argv: readonly string[]): { line: string } | { unparseable: string } {
  if (argv.length === 0) return { unparseable: "exec request without a command" };
  if (argv.some((a) => a.includes("\0"))) return { unparseable: "exec command with a NUL byte" };
  return { line: argv.map((a, i) => quoteShellWord(a, i === 0)).join(" ") };
}
