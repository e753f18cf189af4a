import { fingerprintSync, loadModule, parseSync } from "libpg-query";
import { emptyFacts, type RequestFacts, type StatementFact } from "../../policy/facts.js";
import { parserStateChange } from "./guards.js";
import { LruCache } from "./lru.js";
import { asFields, asList, asString, nodeOf, unwrap, type Fields } from "./node.js";
import {
  DBLINK_HINT,
  dblinkSecrets,
  redactSecrets,
  redactUnparsed,
  statementSecrets,
  type SecretSite,
} from "./redact.js";
import { TemplateCache, type ParseDetail } from "./templates.js";
import { byteSlicer } from "./text.js";
import { collectFacts } from "./walk.js";

/**
 * The data format of a COPY as the server will read its options: `FORMAT x` (any string spelling the parser
 * resolves, `E'\x62inary'` included), the older `BINARY` and `CSV` keywords, or `text` when none is given.
 * `unknown`: an option the server would not accept as one of the three (a FORMAT given twice, a value that is not
 * exactly text/csv/binary, a number, no value); the server rejects those, but nothing here may assume it does.
 */
export type CopyFormat = "text" | "csv" | "binary" | "unknown";

/** How a top-level COPY moves data, for the adapter's protocol handling (CopyIn/CopyOut) and for evidence. */
export interface CopyInfo {
  /** `from`: rows flow into the table; `to`: out of it. */
  direction: "from" | "to";
  /** `stdio` is the client connection; `file` and `program` run on the database server. */
  via: "stdio" | "file" | "program";
  format: CopyFormat;
}

export interface AnalyzedStatement {
  kind: string;
  /** This statement's text as PostgreSQL delimits it (without the separating `;`). */
  text: string;
  /** Every table the statement and its nested statements touch, in order of appearance. */
  tables: string[];
  /** Every function it and its nested statements call, as written (see StatementFact); absent when none. */
  functions?: string[];
  hasWhere?: boolean;
  copy?: CopyInfo;
  /**
   * PREPARE: the name as the server resolved the spelling (folded unless quoted, cut to 63 bytes as the parser
   * cuts identifiers) and the facts of its body, which is what a later `EXECUTE name` runs. Every fact but the
   * first (`prepare`) of the statement.
   */
  prepare?: PreparedBody;
  /** DEALLOCATE name, or `{ all: true }` for DEALLOCATE ALL and DISCARD ALL: the prepared statements it removes. */
  deallocate?: { name: string } | { all: true };
  /**
   * Names of the prepared statements the statement runs, in order: `EXECUTE p`, and EXECUTE nested in
   * `EXPLAIN [ANALYZE] EXECUTE p` and `CREATE TABLE t AS EXECUTE p`. What they run is not in this analysis (it
   * depends on the session): the caller looks the names up.
   */
  executes?: string[];
}

/** What `PREPARE name AS body` defines. */
export interface PreparedBody {
  name: string;
  facts: StatementFact[];
}

export interface SqlAnalysis {
  /** What decide() consumes: one StatementFact per top-level and nested statement. */
  facts: RequestFacts;
  /** Top-level statements in order. */
  statements: AnalyzedStatement[];
  /**
   * libpg-query fingerprint of the whole text: equal for texts that differ only in literals, so it groups "the
   * same query"; it is NOT proof of identical effect (`id = 1` and `id = 2` share it). Computed on first read.
   */
  fingerprint?: string;
  /** Why the text could not be analyzed; facts.unparseable carries the same reason. */
  error?: string;
  /**
   * The text with each secret literal replaced by '********': role passwords (CREATE/ALTER ROLE/USER ...
   * [ENCRYPTED] PASSWORD '...'), password options of user mappings, servers and wrappers (OPTIONS (password
   * '...')), and connection strings with a password (SUBSCRIPTION ... CONNECTION '...', dblink arguments); a
   * statement is replaced whole (`<statement redacted: ...>`) where its literal could not be located exactly.
   * See redact.ts. Present only when there was something to hide; for evidence and approvers, never the target.
   */
  redacted?: string;
}

export interface AnalyzerOptions {
  /** Cached analyses (LRU by exact text). Default 5000; 0 disables the cache. */
  cacheSize?: number;
  /** Budget for the total length of cached texts, in characters. Default 8M. */
  cacheChars?: number;
  /**
   * Templates: analyses reused for texts that differ only in literal values (templates.ts). Default 5000; 0
   * disables them, so every text missing the exact cache is parsed.
   */
  templateCacheSize?: number;
  /** Budget for the total length of template keys, in characters. Default 4M. */
  templateCacheChars?: number;
}

export interface AnalyzerStats {
  /** analyze() calls answered by the exact-text cache. */
  exactHits: number;
  /** analyze() calls answered from a template. */
  templateHits: number;
  /** Templates currently held. */
  templates: number;
}

/**
 * PostgreSQL SQL -> policy facts, using PostgreSQL's own parser (libpg-query, compiled to WebAssembly), so the
 * gateway sees statements exactly where the server will. Results are shared between callers and frozen.
 *
 * Two caches spare the parse: analyses by exact text, and templates (templates.ts) by the text with its literals
 * blanked out, so that `... WHERE aid = 48213` and `... WHERE aid = 7` are parsed once. Templates are only made
 * where the facts cannot depend on literal values; a template hit reports what a parse would, with its own text.
 */
export class PostgresSqlAnalyzer {
  private exactHits = 0;

  private constructor(
    private readonly cache: LruCache<SqlAnalysis>,
    private readonly templates: TemplateCache,
  ) {}

  static async load(options: AnalyzerOptions = {}): Promise<PostgresSqlAnalyzer> {
    await loadModule();
    // the first parse pays a one-off WebAssembly warm-up of tens of milliseconds: pay it here, not on a query
    parseSync("SELECT 1");
    return new PostgresSqlAnalyzer(
      new LruCache(options.cacheSize ?? 5000, options.cacheChars ?? 8_000_000),
      new TemplateCache(options.templateCacheSize ?? 5000, options.templateCacheChars ?? 4_000_000),
    );
  }

  get stats(): AnalyzerStats {
    return { exactHits: this.exactHits, templateHits: this.templates.hits, templates: this.templates.size };
  }

  /** Never throws: text that cannot be analyzed yields `error` and `facts.unparseable`. */
  analyze(sql: string): SqlAnalysis {
    const cached = this.cache.get(sql);
    if (cached) {
      this.exactHits++;
      return cached;
    }
    const key = this.templates.keyOf(sql);
    if (key) {
      // not put in the exact cache: the template already stands for this text
      const fromTemplate = this.templates.lookup(sql, key);
      if (fromTemplate) return fromTemplate;
    }
    const { analysis, detail } = analyzeText(sql);
    const result = deepFreeze(analysis);
    this.cache.set(sql, result);
    if (key && detail) this.templates.consider(sql, key, result, detail);
    return result;
  }
}

interface Analyzed {
  analysis: SqlAnalysis;
  /** Present when the text parsed. */
  detail?: ParseDetail;
}

function unparseable(sql: string, message: string): Analyzed {
  const redacted = redactUnparsed(sql);
  // the parser quotes the token it stopped at, which can be the password: `ALTER ROLE PASSWORD 'x'`
  const reason = redacted === undefined ? message : message.replace(/ at or near "[\s\S]*"/, " at or near (redacted)");
  const facts = emptyFacts();
  facts.unparseable = { reason };
  const analysis: SqlAnalysis = { facts, statements: [], error: reason };
  if (redacted !== undefined) analysis.redacted = redacted;
  return { analysis };
}

function describeParseError(err: unknown): string {
  if (err instanceof RangeError) return "query is too deeply nested to analyze";
  const message = err instanceof Error ? err.message : String(err);
  const details = asFields((err as { sqlDetails?: unknown } | null)?.sqlDetails);
  const pos = details?.cursorPosition;
  return typeof pos === "number" && pos >= 0 ? `${message} (position ${pos + 1})` : message;
}

function analyzeText(sql: string): Analyzed {
  // the parser reads a C string: text after a NUL would be invisible to it (and to the server)
  if (sql.includes("\0")) return unparseable(sql, "query text contains a NUL character");
  if (sql.length === 0) return { analysis: { facts: emptyFacts(), statements: [] } };

  let tree: unknown;
  try {
    tree = parseSync(sql);
  } catch (err) {
    return unparseable(sql, describeParseError(err));
  }

  const slice = byteSlicer(sql);
  const facts = emptyFacts();
  const statements: AnalyzedStatement[] = [];
  const bounds: ParseDetail["bounds"] = [];
  const secrets: SecretSite[] = [];
  // only a text that mentions dblink can call it: the others skip the search through the tree
  const dblink = DBLINK_HINT.test(sql);
  let stateChange: string | undefined;
  for (const raw of asList(asFields(tree)?.stmts)) {
    const rawFields = asFields(raw) ?? {};
    const node = unwrap(rawFields.stmt);
    if (!node) return unparseable(sql, "unexpected parse tree");
    const [type, fields] = node;
    const start = typeof rawFields.stmt_location === "number" ? rawFields.stmt_location : 0;
    const len = typeof rawFields.stmt_len === "number" && rawFields.stmt_len > 0 ? rawFields.stmt_len : undefined;
    const end = len === undefined ? undefined : start + len;
    let executes: string[] | undefined;
    const drafts = collectFacts(type, fields, (t, f) => {
      stateChange ??= parserStateChange(t, f);
      for (const spot of statementSecrets(t, f)) secrets.push({ ...spot, stmtStart: start, stmtEnd: end });
      if (t === "ExecuteStmt") (executes ??= []).push(asString(f.name) ?? "");
    });
    if (dblink) {
      for (const at of dblinkSecrets(fields)) secrets.push({ spot: "literal", at, stmtStart: start, stmtEnd: end });
    }
    facts.statements.push(...drafts);

    const top = drafts[0];
    const statement: AnalyzedStatement = {
      kind: top?.kind ?? "unknown",
      text: slice(start, end),
      tables: [...new Set(drafts.flatMap((d) => d.tables))],
    };
    if (drafts.some((d) => d.functions)) statement.functions = [...new Set(drafts.flatMap((d) => d.functions ?? []))];
    if (top?.hasWhere !== undefined) statement.hasWhere = top.hasWhere;
    if (type === "CopyStmt") statement.copy = copyInfo(fields);
    if (executes) statement.executes = executes;
    addPreparedStatementEffects(statement, type, fields, drafts);
    statements.push(statement);
    bounds.push({ start, end });
  }

  const result: SqlAnalysis = { facts, statements };
  if (statements.length > 0) defineLazyFingerprint(result, sql);
  if (stateChange !== undefined) {
    facts.unparseable = { reason: stateChange };
    result.error = stateChange;
  }
  if (secrets.length > 0) result.redacted = redactSecrets(sql, secrets);
  // what is redacted in a dblink call depends on a literal's value: never a template (templates.ts)
  return { analysis: result, detail: { tree, bounds, literalsMatter: dblink } };
}

/**
 * What a top-level statement does to the session's prepared statements: PREPARE defines one (its body is every
 * fact after the statement's own), DEALLOCATE removes one or all, DISCARD ALL removes all. These statements only
 * ever appear at the top level.
 */
function addPreparedStatementEffects(
  statement: AnalyzedStatement,
  type: string,
  fields: Fields,
  drafts: StatementFact[],
): void {
  if (type === "PrepareStmt") {
    const name = asString(fields.name);
    if (name !== undefined) statement.prepare = { name, facts: drafts.slice(1) };
  } else if (type === "DeallocateStmt") {
    const name = asString(fields.name);
    statement.deallocate = fields.isall === true || name === undefined ? { all: true } : { name };
  } else if (type === "DiscardStmt" && fields.target === "DISCARD_ALL") {
    statement.deallocate = { all: true };
  }
}

function copyInfo(fields: Fields): CopyInfo {
  const direction = fields.is_from === true ? "from" : "to";
  const format = copyFormat(fields);
  if (fields.is_program === true) return { direction, via: "program", format };
  return { direction, via: asString(fields.filename) !== undefined ? "file" : "stdio", format };
}

/**
 * The server (ProcessCopyOptions) compares the option name and value with strcmp: `format` exactly, the value
 * exactly `text`, `csv` or `binary`, and a second FORMAT is an error. The grammar turns `BINARY` and `CSV` into a
 * `format` option, and resolves every string spelling (E'', U&'', $$) and identifier (folded, or quoted) to its
 * value, so the tree says what the server will see.
 */
function copyFormat(fields: Fields): CopyFormat {
  let format: CopyFormat = "text";
  let seen = false;
  for (const option of asList(fields.options)) {
    const def = nodeOf(option, "DefElem");
    const name = asString(def?.defname);
    if (name === undefined) return "unknown";
    if (name !== "format") {
      // `"FORMAT"` is an unknown option to the server; still nothing to be sure of
      if (name.toLowerCase() === "format") return "unknown";
      continue;
    }
    if (seen) return "unknown";
    seen = true;
    const value = asString(nodeOf(def?.arg, "String")?.sval);
    format = value === "text" || value === "csv" || value === "binary" ? value : "unknown";
  }
  return format;
}

/** Fingerprinting costs about as much as parsing; only approvals need it, so compute it when first read. */
function defineLazyFingerprint(result: SqlAnalysis, sql: string): void {
  let value: string | undefined;
  let done = false;
  Object.defineProperty(result, "fingerprint", {
    enumerable: true,
    get(): string | undefined {
      if (!done) {
        done = true;
        try {
          value = fingerprintSync(sql);
        } catch {
          value = undefined;
        }
      }
      return value;
    },
  });
}

/** Cached results are shared by every session: freezing turns an accidental mutation into an error, not a leak. */
function deepFreeze<T>(value: T): T {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null || Object.isFrozen(v)) continue;
    Object.freeze(v);
    for (const key of Object.keys(v)) {
      const desc = Object.getOwnPropertyDescriptor(v, key);
      // accessors (the lazy fingerprint) are left alone: reading them here would defeat the laziness
      if (desc && "value" in desc) stack.push(desc.value);
    }
  }
  return value;
}
