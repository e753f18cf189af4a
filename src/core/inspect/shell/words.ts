import type { Node } from "web-tree-sitter";

/** A shell word evaluated without running anything: its text, and whether part of it is only known at run time. */
export interface WordValue {
  text: string;
  /** Some part came from a variable, substitution or arithmetic the analyzer could not resolve statically. */
  dynamic: boolean;
}

/** Variables with one static value in the analyzed text; anything else is unknown (dynamic). */
export type KnownVars = ReadonlyMap<string, string>;

const DQ_ESCAPES = new Set(["\\", '"', "$", "`"]);

/** Backslash removal outside quotes: `\r\m` is `rm`, backslash-newline disappears. */
function unescapeBare(text: string): string {
  return text.replace(/\\(\n|[\s\S])/g, (_, ch: string) => (ch === "\n" ? "" : ch));
}

/** Inside double quotes a backslash only escapes \ " $ ` and newline. */
function unescapeDouble(text: string): string {
  return text.replace(/\\([\s\S])/g, (m, ch: string) => (ch === "\n" ? "" : DQ_ESCAPES.has(ch) ? ch : m));
}

const C_ESCAPES: Record<string, string> = {
  a: "\x07",
  b: "\b",
  e: "\x1b",
  E: "\x1b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  "\\": "\\",
  "'": "'",
  '"': '"',
  "?": "?",
};

/** `$'r\x6d'` is `rm`: decode bash's ANSI-C quoting so hex/octal/unicode spellings are seen as the real text. */
export function decodeAnsiC(body: string): string {
  return body.replace(
    /\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c[\s\S]|[\s\S])/g,
    (m, esc: string) => {
      const head = esc[0] as string;
      if (head === "x" || head === "u" || head === "U") {
        const cp = parseInt(esc.slice(1), 16);
        return cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
      }
      if (/^[0-7]/.test(esc)) return String.fromCharCode(parseInt(esc, 8) & 0xff);
      if (head === "c") return String.fromCharCode(esc.charCodeAt(1) & 0x1f);
      return C_ESCAPES[esc] ?? m;
    },
  );
}

function dynamic(node: Node): WordValue {
  return { text: node.text, dynamic: true };
}

function join(parts: WordValue[]): WordValue {
  return { text: parts.map((p) => p.text).join(""), dynamic: parts.some((p) => p.dynamic) };
}

function variable(name: string | undefined, node: Node, vars: KnownVars): WordValue {
  const value = name === undefined ? undefined : vars.get(name);
  return value === undefined ? dynamic(node) : { text: value, dynamic: false };
}

/**
 * `$(echo rm)` and `` `printf rm` `` are the classic way to hide a command name from a text filter: resolve a
 * substitution whose body is one echo/printf of static words; anything else stays dynamic.
 */
function substitution(node: Node, vars: KnownVars): WordValue {
  const commands = node.namedChildren.filter((c) => c !== null);
  const only = commands.length === 1 ? commands[0] : undefined;
  if (!only || only.type !== "command") return dynamic(node);
  const argv = commandWords(only, vars);
  const name = argv[0];
  if (!name || name.dynamic || argv.some((a) => a.dynamic)) return dynamic(node);
  let args = argv.slice(1).map((a) => a.text);
  if (name.text === "echo") {
    while (args[0] !== undefined && /^-[neE]+$/.test(args[0])) args = args.slice(1);
    return { text: args.join(" "), dynamic: false };
  }
  if (name.text === "printf" && args.length === 1 && !(args[0] as string).includes("%")) {
    return { text: (args[0] as string).replace(/\\n$/, ""), dynamic: false };
  }
  return dynamic(node);
}

/** Evaluates one argument node to its text as the command will receive it (before globbing and splitting). */
export function evalWord(node: Node, vars: KnownVars): WordValue {
  switch (node.type) {
    case "word":
      return { text: unescapeBare(node.text), dynamic: false };
    case "number":
      return { text: node.text, dynamic: false };
    case "raw_string":
      return { text: node.text.slice(1, -1), dynamic: false };
    case "ansi_c_string":
      return { text: decodeAnsiC(node.text.slice(2, -1)), dynamic: false };
    case "string":
    case "translated_string": {
      const parts: WordValue[] = [];
      for (const child of node.children) {
        if (!child || !child.isNamed) continue;
        if (child.type === "string_content") parts.push({ text: unescapeDouble(child.text), dynamic: false });
        else parts.push(evalWord(child, vars));
      }
      return join(parts);
    }
    case "concatenation":
      return join(node.namedChildren.filter((c) => c !== null).map((c) => evalWord(c, vars)));
    case "simple_expansion": {
      const name = node.namedChildren.find((c) => c?.type === "variable_name");
      return variable(name?.text, node, vars);
    }
    case "expansion": {
      // only the plain ${NAME} form; operators (${X:-rm}, ${X/a/b}) are run-time behaviour
      const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(node.text);
      return variable(m?.[1], node, vars);
    }
    case "command_substitution":
      return substitution(node, vars);
    default:
      return dynamic(node);
  }
}

export function isRedirect(node: Node): boolean {
  return node.type.endsWith("_redirect");
}

/** argv of a `command` node: its name and arguments, evaluated (prefix assignments and redirections left out). */
export function commandWords(command: Node, vars: KnownVars): WordValue[] {
  const argv: WordValue[] = [];
  let seenName = false;
  for (const child of command.namedChildren) {
    if (!child) continue;
    if (child.type === "command_name") {
      seenName = true;
      const word = child.namedChildren[0];
      argv.push(word ? evalWord(word, vars) : { text: child.text, dynamic: true });
    } else if (seenName && !isRedirect(child) && child.type !== "comment") {
      argv.push(evalWord(child, vars));
    }
  }
  return argv;
}
