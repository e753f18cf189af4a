import { compileGlob, hasGlobChars } from "../policy/glob.js";

export interface ColumnRef {
  schema: string;
  table: string;
  column: string;
}

/** One part of a pattern: `*` (anything), an exact name, or a glob. */
interface Part {
  any: boolean;
  /** Compared as is when quoted, lower-cased otherwise. */
  text: string;
  quoted: boolean;
  glob?: RegExp;
}

const SEP = "\u0000"; // cannot occur in a PostgreSQL or MySQL identifier, unlike `.`

/**
 * Splits `schema.table.column` on dots outside double quotes. A quoted part (`"Users"`) is exact and case-sensitive,
 * the way PostgreSQL treats a quoted identifier; `""` inside it is one quote.
 */
export function splitPattern(pattern: string): Part[] | undefined {
  const parts: Part[] = [];
  let i = 0;
  for (;;) {
    let text = "";
    let quoted = false;
    if (pattern[i] === '"') {
      quoted = true;
      i++;
      for (;;) {
        if (i >= pattern.length) return undefined;
        if (pattern[i] === '"') {
          if (pattern[i + 1] !== '"') break;
          i++;
        }
        text += pattern[i];
        i++;
      }
      i++; // closing quote
    } else {
      while (i < pattern.length && pattern[i] !== ".") text += pattern[i++];
    }
    if (text === "") return undefined;
    if (quoted) parts.push({ any: false, text, quoted });
    else if (text === "*") parts.push({ any: true, text, quoted });
    else if (hasGlobChars(text))
      parts.push({ any: false, text, quoted, glob: compileGlob(text, { caseInsensitive: true }) });
    else parts.push({ any: false, text: text.toLowerCase(), quoted });
    if (i >= pattern.length) break;
    if (pattern[i] !== ".") return undefined;
    i++;
  }
  return parts.length === 2 || parts.length === 3 ? parts : undefined;
}

function partMatches(p: Part, name: string, folded: string): boolean {
  if (p.any) return true;
  if (p.glob) return p.glob.test(name);
  return p.quoted ? p.text === name : p.text === folded;
}

/**
 * Column rules compiled to Set lookups. The common shapes (`t.c`, `s.t.c`, `*.c`, `t.*`, `s.t.*`) are one Set
 * probe each; quoted parts and globs inside a part fall back to a short list of predicates.
 */
export class ColumnRules {
  private readonly exact = new Set<string>(); // s SEP t SEP c
  private readonly tableColumn = new Set<string>(); // t SEP c, any schema
  private readonly column = new Set<string>(); // *.c
  private readonly table = new Set<string>(); // t.*, any schema
  private readonly schemaTable = new Set<string>(); // s.t.*
  private readonly other: Part[][] = [];
  readonly size: number;

  constructor(patterns: readonly string[]) {
    for (const pattern of patterns) {
      const parts = splitPattern(pattern);
      // The config schema has validated every pattern; anything it let through that we cannot read is an error.
      if (!parts) throw new Error(`invalid masking column pattern ${JSON.stringify(pattern)}`);
      this.add(parts.length === 2 ? [{ any: true, text: "*", quoted: false }, ...parts] : parts);
    }
    this.size = patterns.length;
  }

  private add(parts: Part[]): void {
    const [s, t, c] = parts as [Part, Part, Part];
    const plain = (p: Part) => !p.any && !p.glob && !p.quoted;
    if (s.any && t.any && plain(c)) this.column.add(c.text);
    else if (s.any && plain(t) && plain(c)) this.tableColumn.add(t.text + SEP + c.text);
    else if (s.any && plain(t) && c.any) this.table.add(t.text);
    else if (plain(s) && plain(t) && plain(c)) this.exact.add(s.text + SEP + t.text + SEP + c.text);
    else if (plain(s) && plain(t) && c.any) this.schemaTable.add(s.text + SEP + t.text);
    else this.other.push(parts);
  }

  matches(ref: ColumnRef): boolean {
    const s = ref.schema.toLowerCase();
    const t = ref.table.toLowerCase();
    const c = ref.column.toLowerCase();
    if (
      this.column.has(c) ||
      this.table.has(t) ||
      this.tableColumn.has(t + SEP + c) ||
      this.schemaTable.has(s + SEP + t) ||
      this.exact.has(s + SEP + t + SEP + c)
    )
      return true;
    for (const [ps, pt, pc] of this.other as [Part, Part, Part][]) {
      if (partMatches(ps, ref.schema, s) && partMatches(pt, ref.table, t) && partMatches(pc, ref.column, c))
        return true;
    }
    return false;
  }
}
