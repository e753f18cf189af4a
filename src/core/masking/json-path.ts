/**
 * The JSON paths of `masking.json_paths`: `$` then steps `.name`, `["name"]` / `['name']`, `[N]`, `[*]`, `.*`,
 * `..name`, `..*`. One parser serves the config check (policy/patterns.ts) and the masker, so a path the schema
 * accepts is exactly a path the masker understands. Semantics follow RFC 9535 for this subset: a name selects an
 * object member, an index an array element, `*` every child of either, and `..` the node and all its descendants.
 * This module imports nothing, so the policy schema can use it without a cycle.
 */

export type JsonPathStep =
  | { kind: "name"; name: string; descendant: boolean }
  | { kind: "index"; index: number }
  | { kind: "wildcard"; descendant: boolean };

export class JsonPathError extends Error {
  override name = "JsonPathError";
}

const NAME = /[A-Za-z_$][A-Za-z0-9_$-]*/y;
const DIGITS = /[0-9]+/y;
const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "'": "'",
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/** Parses one path; throws JsonPathError saying what is wrong and at which offset. */
export function parseJsonPath(text: string): JsonPathStep[] {
  const fail = (at: number, what: string): never => {
    throw new JsonPathError(`${what} at offset ${at}`);
  };
  if (text[0] !== "$") fail(0, "a JSON path starts with $");
  const steps: JsonPathStep[] = [];
  let pos = 1;

  const name = (): string | undefined => {
    NAME.lastIndex = pos;
    const m = NAME.exec(text);
    if (!m) return undefined;
    pos = NAME.lastIndex;
    return m[0];
  };

  const quoted = (): string => {
    const quote = text[pos] as string;
    let out = "";
    pos++;
    for (;;) {
      if (pos >= text.length) fail(pos, "unterminated quoted name");
      const c = text[pos] as string;
      if (c === quote) {
        pos++;
        return out;
      }
      if (c !== "\\") {
        out += c;
        pos++;
        continue;
      }
      const e = text[pos + 1];
      if (e === "u" && /^[0-9A-Fa-f]{4}$/.test(text.slice(pos + 2, pos + 6))) {
        out += String.fromCharCode(parseInt(text.slice(pos + 2, pos + 6), 16));
        pos += 6;
      } else if (e !== undefined && ESCAPES[e] !== undefined) {
        out += ESCAPES[e];
        pos += 2;
      } else {
        fail(pos, `unknown escape \\${e ?? ""} (use \\" \\' \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)`);
      }
    }
  };

  while (pos < text.length) {
    const c = text[pos];
    if (c === ".") {
      const descendant = text[pos + 1] === ".";
      pos += descendant ? 2 : 1;
      if (text[pos] === "*") {
        pos++;
        steps.push({ kind: "wildcard", descendant });
      } else {
        const n = name();
        if (n === undefined) fail(pos, `expected a name or * after ${descendant ? ".." : "."}`);
        steps.push({ kind: "name", name: n as string, descendant });
      }
    } else if (c === "[") {
      pos++;
      const d = text[pos];
      if (d === "*") {
        pos++;
        steps.push({ kind: "wildcard", descendant: false });
      } else if (d === '"' || d === "'") {
        steps.push({ kind: "name", name: quoted(), descendant: false });
      } else {
        DIGITS.lastIndex = pos;
        const m = DIGITS.exec(text);
        if (!m) fail(pos, 'expected *, an index or a quoted name after "["');
        const index = Number((m as RegExpExecArray)[0]);
        if (!Number.isSafeInteger(index)) fail(pos, "index too large");
        pos = DIGITS.lastIndex;
        steps.push({ kind: "index", index });
      }
      if (text[pos] !== "]") fail(pos, 'expected "]"');
      pos++;
    } else {
      fail(pos, 'expected ".", ".." or "["');
    }
  }
  if (steps.length === 0) fail(pos, "a JSON path needs at least one step after $ (the whole document is never masked)");
  return steps;
}

const END = -1;

/**
 * A compiled set of paths, matched while walking a document: the walker carries, for each node, the states (one
 * step of one path) still alive there and asks `advance` for each child. A state is a number indexing flat arrays,
 * so walking allocates one small array per visited node at most, and none below nodes no path can reach.
 */
export class JsonPathSet {
  readonly sources: readonly string[];
  private readonly steps: JsonPathStep[] = [];
  private readonly next: number[] = [];
  private readonly initial: readonly number[];

  constructor(paths: readonly string[]) {
    this.sources = [...paths];
    const initial: number[] = [];
    for (const path of paths) {
      let parsed: JsonPathStep[];
      try {
        parsed = parseJsonPath(path);
      } catch (err) {
        throw new JsonPathError(`invalid JSON path ${JSON.stringify(path)}: ${(err as Error).message}`);
      }
      const first = this.steps.length;
      parsed.forEach((step, i) => {
        this.steps.push(step);
        this.next.push(i + 1 < parsed.length ? first + i + 1 : END);
      });
      if (!initial.includes(first)) initial.push(first);
    }
    this.initial = initial;
  }

  get empty(): boolean {
    return this.initial.length === 0;
  }

  /** The states at the document's root. */
  start(): readonly number[] {
    return this.initial;
  }

  /**
   * The states alive at child `key` of a node whose states are `states`, or null when a path ends exactly there (the
   * child is masked as a whole, so what lies below it no longer matters). Returns `states` itself when only `..`
   * steps carry over unchanged, so a walk under `$..name` allocates nothing for most nodes.
   */
  advance(states: readonly number[], key: string | number): readonly number[] | null {
    let out: number[] | undefined;
    let same = true;
    // no closures here: this runs once per child of every node a path can reach
    for (const id of states) {
      const step = this.steps[id] as JsonPathStep;
      const hit = step.kind === "index" ? key === step.index : step.kind === "name" ? key === step.name : true;
      if (step.kind !== "index" && step.descendant) {
        out ??= [];
        if (!out.includes(id)) out.push(id);
      } else {
        same = false;
      }
      if (hit) {
        const n = this.next[id] as number;
        if (n === END) return null;
        same = false;
        out ??= [];
        if (!out.includes(n)) out.push(n);
      }
    }
    return same ? states : (out ?? NO_STATES);
  }
}

const NO_STATES: readonly number[] = [];

/** Compiles `masking.json_paths`; throws JsonPathError on the first invalid path. */
export function compileJsonPaths(paths: readonly string[]): JsonPathSet {
  return new JsonPathSet(paths);
}

const PLAIN_NAME = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** One step of a hit's path in the same grammar, so a reported path reads back as a pattern for that node. */
export function formatJsonPathStep(key: string | number): string {
  if (typeof key === "number") return `[${key}]`;
  return PLAIN_NAME.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}
