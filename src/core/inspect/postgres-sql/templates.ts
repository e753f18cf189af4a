import type { AnalyzedStatement, SqlAnalysis } from "./analyzer.js";
import { keyToText, literalKey, textToKey, type LiteralKey } from "./literal-key.js";
import { LruCache } from "./lru.js";
import { asFields, visitObjects } from "./node.js";
import { byteToIndex } from "./text.js";

/**
 * Analyses reused across texts that differ only in literal values (literal-key.ts). A template is the analysis of
 * one such text; another text with the same key gets the template's facts and shapes, and its own statement text.
 *
 * Why that cannot change a decision. A key fixes every character outside the literals and each literal's class
 * (integer, other number, string), so two texts with one key are the same token sequence except for literal
 * values. A template is only made when
 *   1. each literal of the template text became an A_Const of the tree (at its own location, or at the minus sign
 *      the grammar folds into a negative constant). The grammar consumes a few literals itself, sometimes checking
 *      their value: `float(0)` is an error and `float(30)` a different type, `int[5]` and `CURRENT_TIME(3)` keep
 *      the number outside any A_Const. Such texts fail this check and are never templates. A literal that becomes
 *      an A_Const is only stored, so any other value of the same class yields the same tree except for A_Const
 *      values: it parses too (or the template would have failed to), with the same statement boundaries, and the
 *      same fingerprint (libpg-query's fingerprint ignores A_Const values);
 *   2. the analysis has no error, no facts.unparseable and nothing to redact, and the text does not mention dblink
 *      (ParseDetail.literalsMatter). Whether a dblink argument is redacted depends on its value (does it hold a
 *      password?), so `dblink_connect('host=h')` must not stand for `dblink_connect('host=h password=pw')`. A
 *      text with a dblink call outside its literals has that name in its key, so no text that shares a key with
 *      a template calls dblink (nor can a U&"" name spell it: the key refuses a quote right after `&`);
 *   3. every fact, top-level or nested, and every top-level statement is one of TEMPLATE_KINDS, and nothing is a
 *      COPY. For these kinds the walker (walk.ts) derives a fact from four things only: the node type (kinds.ts;
 *      for SelectStmt whether it has an INTO clause), table names from RangeVars and relation fields and function
 *      names from FuncCalls (both identifiers, never A_Const values), and hasWhere, which asks whether the WHERE
 *      tree contains a ColumnRef. No A_Const value is ever read for them. Constant values are read only by
 *      guards.ts, for SET statements (standard_conforming_strings, client_encoding), by the COPY format
 *      (analyzer.ts) and by redact.ts: SET is not in the list, so `= 'on'` can never stand for `= 'off'`; nor is
 *      COPY, so `FORMAT 'text'` never stands for `FORMAT 'binary'`; nor are role, user mapping, server or
 *      subscription statements, whose secrets SqlAnalysis.redacted hides per text (and dblink calls are excluded
 *      by 2).
 * Texts longer than TEMPLATE_MAX_TEXT never use templates: a text with a huge literal is always parsed for real.
 */

/** Statement kinds whose facts depend only on node types, identifiers and tree shape. */
const TEMPLATE_KINDS: ReadonlySet<string> = new Set(["select", "insert", "update", "delete", "merge"]);

/** Longest text (in UTF-16 units) that is stored as, or served from, a template. */
export const TEMPLATE_MAX_TEXT = 65_536;

const MINUS = 0x2d;

interface Template {
  /** The frozen analysis of the text the template was made from. */
  analysis: SqlAnalysis;
  /** Each top-level statement's start and end as key offsets (end undefined: to the end of the text). */
  starts: number[];
  ends: (number | undefined)[];
  /**
   * The analysis's fingerprint once some hit has read it (computed lazily, like a parse's). From then on hits
   * carry it as a plain value: a per-hit accessor gave every hit its own hidden class, which made each read of a
   * hit's members a cache miss in V8 on the request path.
   */
  fingerprint?: { value: string | undefined };
}

/** What a parse produced besides the analysis, needed to decide whether it can be a template. */
export interface ParseDetail {
  tree: unknown;
  /** Each top-level statement's byte range; end undefined means to the end of the text. */
  bounds: { start: number; end: number | undefined }[];
  /** The analysis may depend on a literal's value beyond what the checks below see: never a template. */
  literalsMatter?: boolean;
}

export class TemplateCache {
  private readonly lru: LruCache<Template>;
  /** Analyses answered from a template. */
  hits = 0;

  constructor(maxEntries: number, maxChars: number) {
    this.lru = new LruCache(maxEntries, maxChars);
  }

  get size(): number {
    return this.lru.size;
  }

  /** The key of `sql` if it can use templates: they are on, the text is short enough and has literals. */
  keyOf(sql: string): LiteralKey | undefined {
    if (this.lru.maxEntries <= 0 || sql.length > TEMPLATE_MAX_TEXT) return undefined;
    const key = literalKey(sql);
    return key && key.spans.length > 0 ? key : undefined;
  }

  /** The analysis of `sql` from the template of its key (from keyOf), if there is one. */
  lookup(sql: string, key: LiteralKey): SqlAnalysis | undefined {
    const template = this.lru.get(key.key);
    if (template === undefined) return undefined;
    this.hits++;
    return instantiate(sql, key, template);
  }

  /** Keeps a freshly parsed analysis as the template of its key (from keyOf) if that is safe (see above). */
  consider(sql: string, key: LiteralKey, analysis: SqlAnalysis, detail: ParseDetail): void {
    if (detail.literalsMatter === true) return;
    if (!hasTemplateKinds(analysis) || detail.bounds.length !== analysis.statements.length) return;
    const index = byteToIndex(sql);
    if (!literalsAreConstants(sql, key.spans, detail.tree, index)) return;
    const starts: number[] = [];
    const ends: (number | undefined)[] = [];
    for (const { start, end } of detail.bounds) {
      const s = textToKey(key.spans, index(start));
      const e = end === undefined ? undefined : textToKey(key.spans, index(end));
      if (s === undefined || (end !== undefined && e === undefined)) return;
      starts.push(s);
      ends.push(e);
    }
    this.lru.set(key.key, { analysis, starts, ends });
  }
}

function hasTemplateKinds(a: SqlAnalysis): boolean {
  if (a.error !== undefined || a.facts.unparseable !== undefined || a.redacted !== undefined) return false;
  if (a.statements.length === 0) return false;
  if (!a.facts.statements.every((f) => TEMPLATE_KINDS.has(f.kind))) return false;
  return a.statements.every((s) => TEMPLATE_KINDS.has(s.kind) && s.copy === undefined && !namesPrepared(s));
}

/**
 * A statement that names a prepared statement (PREPARE, EXECUTE, DEALLOCATE) is never a template. Their kinds are
 * not template kinds anyway; this keeps it so if that list grows, since instantiate() copies no names.
 */
function namesPrepared(s: AnalyzedStatement): boolean {
  return s.prepare !== undefined || s.executes !== undefined || s.deallocate !== undefined;
}

/** Byte offsets of every A_Const in the tree (a location of 0 is left out of libpg-query's JSON). */
function constantLocations(tree: unknown): number[] {
  const out: number[] = [];
  visitObjects(tree, (o) => {
    const constant = asFields(o.A_Const);
    if (constant) out.push(typeof constant.location === "number" ? constant.location : 0);
  });
  return out;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** Whether each literal of the text is an A_Const of its tree, at its own location or at a minus sign before it. */
function literalsAreConstants(
  sql: string,
  spans: readonly number[],
  tree: unknown,
  index: (byte: number) => number,
): boolean {
  const constants = new Set(constantLocations(tree).map(index));
  for (let i = 0; i < spans.length; i += 2) {
    const start = spans[i] as number;
    if (constants.has(start)) continue;
    // `- 5` and `- -5` are one constant located at the first minus sign
    let found = false;
    for (let k = start - 1; k >= 0 && !found; k--) {
      const c = sql.charCodeAt(k);
      if (c === MINUS) found = constants.has(k);
      else if (!isSpace(c)) break;
    }
    if (!found) return false;
  }
  return true;
}

function instantiate(sql: string, key: LiteralKey, template: Template): SqlAnalysis {
  const source = template.analysis;
  const statements = source.statements.map((s, i): AnalyzedStatement => {
    const start = keyToText(key.spans, template.starts[i] as number);
    const endKey = template.ends[i];
    const text = sql.slice(start, endKey === undefined ? undefined : keyToText(key.spans, endKey));
    const statement: AnalyzedStatement = { kind: s.kind, text, tables: s.tables };
    // function names, like table names, are outside the literals: the key fixes them
    if (s.functions !== undefined) statement.functions = s.functions;
    if (s.hasWhere !== undefined) statement.hasWhere = s.hasWhere;
    return Object.freeze(statement);
  });
  const frozen = Object.freeze(statements) as AnalyzedStatement[];
  // libpg-query fingerprints ignore constant values: the template's fingerprint is this text's
  const known = template.fingerprint;
  if (known) return Object.freeze({ facts: source.facts, statements: frozen, fingerprint: known.value });
  const result: SqlAnalysis = { facts: source.facts, statements: frozen };
  Object.defineProperty(result, "fingerprint", {
    enumerable: true,
    get: () => (template.fingerprint ??= { value: source.fingerprint }).value,
  });
  return Object.freeze(result);
}
