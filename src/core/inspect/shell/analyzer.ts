import type { Node, Parser } from "web-tree-sitter";
import { emptyFacts, type CommandFact, type RequestFacts } from "../../policy/facts.js";
import { loadBashParser } from "./parser.js";
import { basename, innerCommands, SHELLS, type Inner } from "./wrappers.js";
import { commandWords, evalWord, isRedirect, type KnownVars, type WordValue } from "./words.js";

/** Bounds that keep a hostile line from costing more than a bounded parse. */
export const SHELL_LIMITS = {
  /** Longest text analyzed; longer is unparseable. */
  maxLength: 64 * 1024,
  /** How many times `bash -c`, `eval`, `su -c`, heredocs fed to a shell... are parsed again inside each other. */
  maxDepth: 4,
  /** Wrapper hops (`sudo env nice timeout 5 rm`) followed within one command. */
  maxHops: 8,
  /** Simple commands collected over the whole request. */
  maxCommands: 2000,
} as const;

export interface ShellAnalysis {
  facts: RequestFacts;
  /** Command/process substitutions as written (`$(echo rm)`, `` `id` ``, `<(curl x)`), outermost text first. */
  substitutions: string[];
  /**
   * The text ends inside an unfinished construct (open quote, `do` without `done`, trailing `&&`, heredoc
   * without its end): a shell would wait for more lines before running anything.
   */
  incomplete: boolean;
  /** Why the text is unparseable; facts.unparseable carries the same reason. */
  error?: string;
}

/** The first syntax error (ERROR or MISSING node), by position. */
function firstError(node: Node): Node | undefined {
  if (node.isError || node.isMissing) return node;
  for (const child of node.children) {
    if (child?.hasError || child?.isMissing) return firstError(child) ?? child;
  }
  return undefined;
}

function lastError(node: Node): Node | undefined {
  for (let i = node.childCount - 1; i >= 0; i--) {
    const child = node.child(i);
    if (child && (child.hasError || child.isMissing)) return lastError(child) ?? child;
  }
  return node.isError || node.isMissing ? node : undefined;
}

/**
 * Variables with exactly one static assignment in the text are known; a variable assigned twice (in a branch, a
 * loop, with +=) or set elsewhere (environment, read, for) stays unknown, so `$X` never resolves to a wrong value.
 */
function collectVars(root: Node, outer: KnownVars): Map<string, string> {
  const seen = new Map<string, { count: number; value?: string }>();
  const bump = (name: string, value?: string) => {
    const prev = seen.get(name);
    seen.set(name, { count: (prev?.count ?? 0) + 1, ...(value !== undefined ? { value } : {}) });
  };
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const node = stack.pop() as Node;
    if (node.type === "variable_assignment" && node.parent?.type !== "command") {
      const name = node.namedChildren[0];
      const valueNode = node.namedChildren[1];
      if (name?.type === "variable_name") {
        const append = node.text.startsWith(`${name.text}+=`);
        const value = valueNode ? evalWord(valueNode, outer) : { text: "", dynamic: false };
        bump(name.text, append || value.dynamic ? undefined : value.text);
      }
    } else if (node.type === "for_statement") {
      const name = node.namedChildren.find((c) => c?.type === "variable_name");
      if (name) bump(name.text);
    }
    for (const child of node.namedChildren) if (child) stack.push(child);
  }
  const vars = new Map(outer);
  for (const [name, { count, value }] of seen) {
    if (count === 1 && value !== undefined && !outer.has(name)) vars.set(name, value);
    else vars.delete(name);
  }
  return vars;
}

function text(argv: readonly WordValue[]): string {
  return argv.map((w) => w.text).join(" ");
}

/** The innermost command a wrapper chain runs, for the pipeline form `curl x | sh` of `curl x | sudo /bin/sh`. */
function innermost(argv: WordValue[]): WordValue[] {
  let current = argv;
  for (let hop = 0; hop < SHELL_LIMITS.maxHops; hop++) {
    const next = innerCommands(current).find((i): i is Extract<Inner, { kind: "argv" }> => i.kind === "argv");
    if (!next) break;
    current = next.argv;
  }
  return current;
}

function withBasename(argv: readonly WordValue[]): string {
  const [first, ...rest] = argv;
  return first ? [basename(first.text), ...rest.map((w) => w.text)].join(" ") : "";
}

/** Walks one parsed text (and, recursively, the scripts it hands to other shells), collecting facts. */
class Collector {
  readonly commands: CommandFact[] = [];
  readonly pipelines = new Set<string>();
  readonly substitutions: string[] = [];
  problem: string | undefined;
  incomplete = false;

  constructor(private readonly parser: Parser) {}

  fail(reason: string): void {
    this.problem ??= reason;
  }

  script(source: string, depth: number, outer: KnownVars): void {
    if (depth > SHELL_LIMITS.maxDepth) return this.fail(`scripts nested more than ${SHELL_LIMITS.maxDepth} deep`);
    if (source.length > SHELL_LIMITS.maxLength)
      return this.fail(`command text longer than ${SHELL_LIMITS.maxLength} characters`);
    const tree = this.parser.parse(source);
    if (!tree) return this.fail("the shell parser gave no result");
    try {
      const root = tree.rootNode;
      if (root.hasError) {
        const err = firstError(root) ?? root;
        const where = `line ${err.startPosition.row + 1}, column ${err.startPosition.column + 1}`;
        const near = err.text.length > 0 ? ` near ${JSON.stringify(err.text.slice(0, 40))}` : "";
        this.fail(`shell syntax error at ${where}${near}${depth > 0 ? " (in a nested script)" : ""}`);
        const last = lastError(root);
        if (depth === 0 && last && last.endIndex >= source.trimEnd().length) this.incomplete = true;
      }
      // facts from a partial tree still let deny rules name what they matched
      this.walk(root, depth, collectVars(root, outer));
    } finally {
      tree.delete();
    }
  }

  private walk(root: Node, depth: number, vars: KnownVars): void {
    const stack: Node[] = [root];
    while (stack.length > 0) {
      const node = stack.pop() as Node;
      switch (node.type) {
        case "command":
          this.command(node, depth, vars);
          break;
        case "pipeline":
          this.pipeline(node, vars);
          break;
        case "command_substitution":
        case "process_substitution":
          this.substitutions.push(node.text);
          break;
        case "redirected_statement":
          this.redirected(node, vars);
          break;
      }
      // children in reverse so they pop in document order
      for (let i = node.namedChildCount - 1; i >= 0; i--) {
        const child = node.namedChild(i);
        if (child) stack.push(child);
      }
    }
  }

  private command(node: Node, depth: number, vars: KnownVars): void {
    const argv = commandWords(node, vars);
    if (argv.length === 0) return;
    const final = this.argv(argv, depth, vars, 0);
    // `bash <<< "rm -rf /"` and `sh <<EOF ... EOF`: the shell reads its script from stdin
    if (final && SHELLS.has(basename(final.text)) && !final.dynamic) {
      for (const body of stdinScripts(node, vars)) {
        if (body.dynamic) this.fail(`a shell reads a script only known at run time: ${body.text.slice(0, 60)}`);
        else this.script(body.text, depth + 1, vars);
      }
    }
  }

  /** Records one argv and what it runs; returns the innermost command name (for stdin-script checks). */
  private argv(argv: WordValue[], depth: number, vars: KnownVars, hops: number): WordValue | undefined {
    const name = argv[0];
    if (!name) return undefined;
    if (this.commands.length >= SHELL_LIMITS.maxCommands) {
      this.fail(`more than ${SHELL_LIMITS.maxCommands} commands`);
      return undefined;
    }
    if (name.dynamic) this.fail(`command name is only known at run time: ${name.text.slice(0, 60)}`);
    this.commands.push({ name: name.text, argv: argv.map((w) => w.text) });
    this.pipelines.add(text(argv));
    this.pipelines.add(withBasename(argv));
    if (hops >= SHELL_LIMITS.maxHops) {
      this.fail(`more than ${SHELL_LIMITS.maxHops} wrapper commands in a row`);
      return name;
    }
    let final: WordValue | undefined = name;
    for (const inner of innerCommands(argv)) {
      if (inner.kind === "argv") {
        final = this.argv(inner.argv, depth, vars, hops + 1);
        // xargs appends its input to the command: `{}` stands for it so `rm -rf *` patterns still match
        if (inner.via === "xargs") this.pipelines.add(`${withBasename(inner.argv)} {}`);
      } else if (inner.script.dynamic) {
        this.fail(`${inner.via} runs a script only known at run time: ${inner.script.text.slice(0, 60)}`);
      } else {
        this.script(inner.script.text, depth + 1, vars);
      }
    }
    return final;
  }

  private pipeline(node: Node, vars: KnownVars): void {
    const written: string[] = [];
    const canonical: string[] = [];
    for (const element of node.namedChildren) {
      if (!element) continue;
      const command = element.type === "command" ? element : element.namedChildren.find((c) => c?.type === "command");
      if (command && (element.type === "command" || element.type === "redirected_statement")) {
        const argv = commandWords(command, vars);
        written.push(text(argv));
        canonical.push(withBasename(innermost(argv)));
      } else {
        const raw = element.text.replace(/\s+/g, " ").trim();
        written.push(raw);
        canonical.push(raw);
      }
    }
    this.pipelines.add(written.join(" | "));
    this.pipelines.add(canonical.join(" | "));
  }

  /** `echo x > /dev/sda`: the command with its redirections, so a pattern can name a target file. */
  private redirected(node: Node, vars: KnownVars): void {
    const command = node.namedChildren.find((c) => c?.type === "command");
    if (!command) return;
    const redirects = node.namedChildren
      .filter((c): c is Node => c !== null && c.type === "file_redirect")
      .map((r) => r.text.replace(/\s+/g, " "));
    if (redirects.length > 0) this.pipelines.add(`${text(commandWords(command, vars))} ${redirects.join(" ")}`);
  }
}

/** Heredoc bodies and here-strings attached to a command. */
function stdinScripts(command: Node, vars: KnownVars): WordValue[] {
  const bodies: WordValue[] = [];
  for (const child of command.namedChildren) {
    if (child?.type !== "herestring_redirect") continue;
    const word = child.namedChildren[0];
    if (word) bodies.push(evalWord(word, vars));
  }
  const parent = command.parent;
  if (parent?.type === "redirected_statement") {
    for (const r of parent.namedChildren) {
      if (r?.type === "heredoc_redirect") {
        const body = r.namedChildren.find((c) => c?.type === "heredoc_body");
        // a quoted delimiter (<<'EOF') keeps the body literal; otherwise expansions make it dynamic
        const dynamicBody = body?.namedChildren.some((c) => c?.type !== "heredoc_content") ?? false;
        bodies.push({ text: body?.text ?? "", dynamic: dynamicBody });
      } else if (r?.type === "herestring_redirect") {
        const word = r.namedChildren[0];
        if (word) bodies.push(evalWord(word, vars));
      } else if (r && isRedirect(r) && r.type === "file_redirect" && /^\d*</.test(r.text)) {
        // `sh < script.sh` runs a file the gateway cannot see
        bodies.push({ text: r.text, dynamic: true });
      }
    }
  }
  return bodies;
}

/**
 * Shell command lines -> policy facts, with tree-sitter-bash (a real grammar, so quoting, `$( )`, backticks and
 * heredocs are seen where bash sees them). Words are evaluated statically: quotes and escapes removed, ANSI-C
 * strings decoded, variables assigned once in the same text resolved, `$(echo rm)` resolved; a command name that
 * is still only known at run time makes the request unparseable (fail closed by default).
 */
export class ShellAnalyzer {
  private constructor(private readonly parser: Parser) {}

  static async load(): Promise<ShellAnalyzer> {
    const analyzer = new ShellAnalyzer(await loadBashParser());
    // pay the WebAssembly warm-up at load, not on the first command
    analyzer.analyze("true");
    return analyzer;
  }

  /** Never throws: text that cannot be analyzed yields `error` and `facts.unparseable`. */
  analyze(line: string): ShellAnalysis {
    const collector = new Collector(this.parser);
    try {
      collector.script(line, 0, new Map());
    } catch (err) {
      collector.fail(`shell analysis failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    const facts = emptyFacts();
    facts.commands = collector.commands;
    facts.pipelines = [...collector.pipelines].filter((p) => p.length > 0);
    const result: ShellAnalysis = { facts, substitutions: collector.substitutions, incomplete: collector.incomplete };
    if (collector.problem !== undefined) {
      facts.unparseable = { reason: collector.problem };
      result.error = collector.problem;
    }
    return result;
  }
}

let shared: ShellAnalyzer | undefined;

/** Loads the shared analyzer once; `analyzeShell` needs it. */
export async function loadShellAnalyzer(): Promise<ShellAnalyzer> {
  shared ??= await ShellAnalyzer.load();
  return shared;
}

/** Facts for one command line (after `await loadShellAnalyzer()`). */
export function analyzeShell(line: string): RequestFacts {
  if (!shared) throw new Error("shell analyzer not loaded: await loadShellAnalyzer() first");
  return shared.analyze(line).facts;
}
