import { JsonPathError, parseJsonPath } from "../masking/json-path.js";
import { compileGlob, hasGlobChars } from "./glob.js";
import { HTTP_METHODS, KUBERNETES_VERBS, STATEMENT_KINDS } from "./vocabulary.js";

/**
 * Expanding a word or glob against a closed vocabulary. A rule such as `create_*` is fine; a word that names
 * nothing (`dorp`) is an error, so a typo can never turn a deny rule into a rule that never fires.
 */
export function expandInVocabulary(pattern: string, vocabulary: readonly string[], caseInsensitive = true): string[] {
  if (!hasGlobChars(pattern)) {
    const word = caseInsensitive ? pattern.toLowerCase() : pattern;
    return vocabulary.filter((v) => (caseInsensitive ? v.toLowerCase() : v) === word);
  }
  const re = compileGlob(pattern, { caseInsensitive });
  return vocabulary.filter((v) => re.test(v));
}

function vocabularyError(what: string, pattern: string, vocabulary: readonly string[]): string {
  const adjective = hasGlobChars(pattern)
    ? `${what} pattern ${JSON.stringify(pattern)} matches no ${what}`
    : `unknown ${what} ${JSON.stringify(pattern)}`;
  return `${adjective} (expected one of ${vocabulary.join(", ")})`;
}

export function checkStatementPattern(pattern: string): string | undefined {
  return expandInVocabulary(pattern, STATEMENT_KINDS).length > 0
    ? undefined
    : vocabularyError("statement kind", pattern, STATEMENT_KINDS);
}

export function checkVerbPattern(pattern: string): string | undefined {
  return expandInVocabulary(pattern, KUBERNETES_VERBS).length > 0
    ? undefined
    : vocabularyError("verb", pattern, KUBERNETES_VERBS);
}

export function checkMethodPattern(pattern: string): string | undefined {
  return expandInVocabulary(pattern, HTTP_METHODS).length > 0
    ? undefined
    : vocabularyError("HTTP method", pattern, HTTP_METHODS);
}

// Identifier parts of a table or column name; `*` and `?` allowed inside a part.
const PART = String.raw`[A-Za-z0-9_$*?-]+`;
const TABLE = new RegExp(`^${PART}(?:\\.${PART}){0,2}$`);
const COLUMN = new RegExp(`^${PART}(?:\\.${PART}){1,2}$`);

export function checkTablePattern(pattern: string): string | undefined {
  return TABLE.test(pattern)
    ? undefined
    : `invalid table ${JSON.stringify(pattern)} (expected table, schema.table, database.schema.table or *.table)`;
}

// a function is named by itself or with its schema; how a call is matched is in matcher.ts
const FUNCTION = new RegExp(`^${PART}(?:\\.${PART})?$`);

export function checkFunctionPattern(pattern: string): string | undefined {
  return FUNCTION.test(pattern)
    ? undefined
    : `invalid function ${JSON.stringify(pattern)} (expected function or schema.function, e.g. pg_read_file or pg_catalog.set_config)`;
}

export function checkColumnPattern(pattern: string): string | undefined {
  return COLUMN.test(pattern)
    ? undefined
    : `invalid column ${JSON.stringify(pattern)} (expected table.column, schema.table.column or *.column)`;
}

export function checkPathPattern(pattern: string): string | undefined {
  return pattern.startsWith("/") || pattern.startsWith("*")
    ? undefined
    : `invalid path ${JSON.stringify(pattern)} (an HTTP path glob starts with / or *)`;
}

/**
 * A JSON path for masking: `$` then `.name`, `["name"]`, `[N]`, `[*]`, `.*` or `..name` (any depth) steps, e.g.
 * `$.users[*].email` or `$..password`. The masker's own parser decides, so the schema accepts exactly what it reads.
 */
export function checkJsonPathPattern(pattern: string): string | undefined {
  try {
    parseJsonPath(pattern);
    return undefined;
  } catch (err) {
    const why = err instanceof JsonPathError ? `: ${err.message}` : "";
    return `invalid JSON path ${JSON.stringify(pattern)}${why} (expected e.g. $.users[*].email, $..password or $.data["api-key"])`;
  }
}
