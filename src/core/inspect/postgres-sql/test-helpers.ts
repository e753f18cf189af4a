import { INTEGER_MARK, literalKey, NUMERIC_MARK } from "./literal-key.js";
import type { SqlAnalysis } from "./analyzer.js";

/** Helpers for the analyzer's tests. */

const INTEGERS = ["0", "7", "42", "48213", "2147483647", "0002147483647", "00"];
const NUMERICS = ["1.5", ".5", "7.", "1e5", "1E+10", "2.5e-3", "2147483648", "99999999999"];
const STRINGS = ["'x'", "''", "'it''s'", "'a'\n'b'", "'é€😀'", "'-- no comment'", "'/* no */'", "'; DROP TABLE t; --'"];

/**
 * `sql` with each literal replaced by another of the same class (integer, other number, string), so the result
 * has the same literal key; `pick` chooses among candidates. Undefined if the lexer does not take `sql`.
 */
export function varyLiterals(sql: string, pick: (n: number) => number): string | undefined {
  const key = literalKey(sql);
  if (!key) return undefined;
  let out = "";
  let at = 0;
  let shift = 0;
  for (let i = 0; i < key.spans.length; i += 2) {
    const start = key.spans[i] as number;
    const end = key.spans[i + 1] as number;
    const mark = key.key[start - shift];
    const pool = mark === INTEGER_MARK ? INTEGERS : mark === NUMERIC_MARK ? NUMERICS : STRINGS;
    out += sql.slice(at, start) + pool[pick(pool.length) % pool.length];
    at = end;
    shift += end - start - 1;
  }
  const varied = out + sql.slice(at);
  if (literalKey(varied)?.key !== key.key) throw new Error(`varied text has another key: ${JSON.stringify(varied)}`);
  return varied;
}

/** Everything of an analysis that callers can see, as plain data (the fingerprint read too). */
export function visible(a: SqlAnalysis): unknown {
  return {
    facts: a.facts,
    statements: a.statements.map((s) => ({ ...s })),
    error: a.error,
    redacted: a.redacted,
    fingerprint: a.fingerprint,
  };
}
