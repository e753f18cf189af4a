/**
 * Policy globs: `*` is any run of characters (spaces and slashes included), `?` is one character, everything else
 * is literal. Whitespace runs collapse to one space on both sides, so `rm  -rf /` and `rm -rf /` are the same text.
 */

export function collapseWhitespace(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

export function hasGlobChars(pattern: string): boolean {
  return pattern.includes("*") || pattern.includes("?");
}

/** Compiles once at config load; matching is then a single anchored RegExp test. */
export function compileGlob(pattern: string, options: { caseInsensitive?: boolean } = {}): RegExp {
  let source = "";
  for (const ch of collapseWhitespace(pattern)) {
    if (ch === "*") source += "[\\s\\S]*";
    else if (ch === "?") source += "[\\s\\S]";
    else source += ch.replace(/[.+^${}()|[\]\\/]/g, "\\$&");
  }
  // `u` so that `?` is one code point, not half of a surrogate pair.
  return new RegExp(`^${source}$`, options.caseInsensitive ? "iu" : "u");
}

/** A list of globs as one predicate. Exact words go into a Set, the rest are tried one by one. */
export class GlobSet {
  private readonly exact = new Set<string>();
  private readonly regexps: RegExp[] = [];
  private readonly fold: boolean;

  constructor(patterns: readonly string[], options: { caseInsensitive?: boolean } = {}) {
    this.fold = options.caseInsensitive === true;
    for (const p of patterns) {
      if (hasGlobChars(p)) this.regexps.push(compileGlob(p, options));
      else this.exact.add(this.normalize(p));
    }
  }

  private normalize(text: string): string {
    const collapsed = collapseWhitespace(text);
    return this.fold ? collapsed.toLowerCase() : collapsed;
  }

  matches(subject: string): boolean {
    const s = this.normalize(subject);
    if (this.exact.has(s)) return true;
    for (const re of this.regexps) if (re.test(s)) return true;
    return false;
  }
}
