import { scanSync, type ScanToken } from "libpg-query";
import { asFields, asList, asString, nodeOf, visitObjects, type Fields } from "./node.js";
import { byteToIndex } from "./text.js";

/**
 * Secrets in statement text, which evidence and approvers must not see. SqlAnalysis.redacted is the text with each
 * such string literal replaced by '********':
 *   - role passwords: CREATE ROLE/USER/GROUP and ALTER ROLE/USER ... [ENCRYPTED] PASSWORD '...';
 *   - password options of user mappings, foreign servers and foreign-data wrappers: CREATE/ALTER USER MAPPING,
 *     SERVER, FOREIGN DATA WRAPPER ... OPTIONS ([ADD|SET] password '...'), any option whose name contains
 *     `password` or `passwd` (sslpassword too) except the boolean password_required;
 *   - connection strings with a password: CREATE/ALTER SUBSCRIPTION ... CONNECTION '...', and string constants in
 *     the arguments of dblink functions (dblink, dblink_exec, dblink_connect, ...), whole;
 * a connection string has a password when it has `password=` (or sslpassword=, with any spacing, as keyword/value
 * pair or URI parameter) or is a URI whose user part has one (`postgresql://u:pw@host`).
 *
 * Where the secret is comes from the parse tree (the option's location, the constant's location, the statement for
 * CONNECTION); the literal itself is then found with PostgreSQL's own scanner (libpg-query scan). Where that does
 * not lead to exactly one string token, the whole statement is replaced instead.
 */

export const REDACTED_PASSWORD = "'********'";
/** A role's statement, where its password could not be located. */
export const REDACTED_STATEMENT = "<statement redacted: role password>";
/** Any other statement with a secret that could not be located, and text that cannot be scanned. */
export const REDACTED_SECRET_STATEMENT = "<statement redacted: password>";

/**
 * How to find a secret literal from a byte offset of the tree:
 *   - `role`: `at` is the PASSWORD keyword, or ENCRYPTED before it; the literal follows PASSWORD;
 *   - `option`: `at` is a generic option's name; the literal follows it;
 *   - `literal`: `at` is the literal (an A_Const's location);
 *   - `connection`: the literal after the statement's CONNECTION keyword (the tree has no location for it).
 */
export type SecretSpot = { spot: "role" | "option" | "literal"; at: number } | { spot: "connection" };

/** A secret of a statement, with the statement's byte range. */
export type SecretSite = SecretSpot & { stmtStart: number; stmtEnd: number | undefined };

/** Statements whose generic OPTIONS (...) may carry a password. */
const OPTION_STATEMENTS: ReadonlySet<string> = new Set([
  "CreateUserMappingStmt",
  "AlterUserMappingStmt",
  "CreateForeignServerStmt",
  "AlterForeignServerStmt",
  "CreateFdwStmt",
  "AlterFdwStmt",
]);

/** Texts that may call a dblink function: only these are searched for calls (a U&"" name may spell one). */
export const DBLINK_HINT = /dblink|u&"/i;

function location(def: Fields): number {
  return typeof def.location === "number" ? def.location : -1;
}

/** Whether a generic option of this name holds a password. */
export function isSecretOptionName(name: string): boolean {
  const n = name.toLowerCase();
  return n !== "password_required" && (n.includes("password") || n.includes("passwd"));
}

/**
 * Whether a URI in `s` has a password in its user part: `scheme://user:password@host`. As libpq reads it, the user
 * part is whatever comes before an `@` that no `/` precedes (white space, quotes and all), so each authority runs
 * to the next `/`, and the scan is linear (no regular expression to backtrack).
 */
function uriHasPassword(s: string): boolean {
  for (let scheme = s.indexOf("://"); scheme >= 0; scheme = s.indexOf("://", scheme + 3)) {
    const slash = s.indexOf("/", scheme + 3);
    const authority = s.slice(scheme + 3, slash < 0 ? undefined : slash);
    const at = authority.lastIndexOf("@");
    if (at > 0 && authority.slice(0, at).includes(":")) return true;
  }
  return false;
}

/** Whether a libpq connection string (keyword/value or URI) carries a password. */
export function conninfoHasPassword(s: string): boolean {
  return /password\s*=/i.test(s) || uriHasPassword(s);
}

/** The secrets a statement node sets itself (not those in function calls below it: see dblinkSecrets). */
export function statementSecrets(type: string, fields: Fields): SecretSpot[] {
  if (type === "CreateRoleStmt" || type === "AlterRoleStmt") {
    const out: SecretSpot[] = [];
    for (const option of asList(fields.options)) {
      const def = nodeOf(option, "DefElem");
      // PASSWORD NULL removes the password: nothing to hide
      if (def?.defname !== "password" || def.arg === undefined || def.arg === null) continue;
      out.push({ spot: "role", at: location(def) });
    }
    return out;
  }
  if (OPTION_STATEMENTS.has(type)) {
    const out: SecretSpot[] = [];
    for (const option of asList(fields.options)) {
      const def = nodeOf(option, "DefElem");
      // DROP password has no value
      if (!def || def.arg === undefined || def.arg === null) continue;
      if (isSecretOptionName(asString(def.defname) ?? "")) out.push({ spot: "option", at: location(def) });
    }
    return out;
  }
  if (type === "CreateSubscriptionStmt" || type === "AlterSubscriptionStmt") {
    const conninfo = asString(fields.conninfo);
    return conninfo !== undefined && conninfoHasPassword(conninfo) ? [{ spot: "connection" }] : [];
  }
  return [];
}

/** The string constants of an expression, in no particular order, with their byte offsets. */
function stringConstants(expr: unknown): { at: number; value: string }[] {
  const out: { at: number; value: string }[] = [];
  visitObjects(expr, (o) => {
    const constant = asFields(o.A_Const);
    const value = asString(asFields(constant?.sval)?.sval);
    if (!constant || value === undefined) return true;
    out.push({ at: location(constant), value });
    return false;
  });
  return out;
}

/**
 * Byte offsets of the string constants to hide in the dblink calls of a statement tree: for each argument of a
 * call to a function named dblink* (any schema), all of its string constants when together they hold a
 * connection string with a password (so `'host=h password=' || 'pw'` goes whole). Whether the connection is given
 * by name or by string, and in which position, does not matter.
 */
export function dblinkSecrets(tree: unknown): number[] {
  const out = new Set<number>();
  visitObjects(tree, (o) => {
    const call = asFields(o.FuncCall);
    const name = call ? asString(nodeOf(asList(call.funcname).at(-1), "String")?.sval) : undefined;
    if (call && name?.toLowerCase().startsWith("dblink") === true) {
      for (const arg of asList(call.args)) {
        const constants = stringConstants(arg);
        if (conninfoHasPassword(constants.map((c) => c.value).join(" "))) for (const c of constants) out.add(c.at);
      }
    }
  });
  return [...out];
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

function lower(token: ScanToken | undefined): string | undefined {
  return token?.text.toLowerCase();
}

/** SCONST, or a U&'' string (the scanner reports USCONST as UNKNOWN). */
function isStringToken(token: ScanToken | undefined): boolean {
  if (!token) return false;
  return token.tokenName === "SCONST" || /^u&'/i.test(token.text);
}

/**
 * The byte range of the string literal at token i, with the N of N'...' (which the scanner reports as a token of
 * its own) if token i is that N, with its UESCAPE clause if any, and with any strings directly after it (more
 * strings right after a string can only be a mistyped secret, a syntax error: they go too).
 */
function literalAt(tokens: readonly ScanToken[], i: number): { start: number; end: number } | undefined {
  let at = i;
  const start = tokens[at]?.start;
  if (lower(tokens[at]) === "n" && tokens[at + 1]?.start === tokens[at]?.end) at++;
  const literal = tokens[at];
  if (start === undefined || !literal || !isStringToken(literal)) return undefined;
  let end = literal.end;
  const escape = tokens[at + 2];
  if (lower(tokens[at + 1]) === "uescape" && escape?.tokenName === "SCONST") {
    end = escape.end;
    at += 2;
  }
  while (isStringToken(tokens[at + 1])) end = (tokens[++at] as ScanToken).end;
  return { start, end };
}

/** The literal after PASSWORD at token i. */
function literalAfterPassword(tokens: readonly ScanToken[], i: number): { start: number; end: number } | undefined {
  return lower(tokens[i]) === "password" ? literalAt(tokens, i + 1) : undefined;
}

/** The text's tokens without comments (the scanner reports those too), or undefined if it cannot be scanned. */
function scan(sql: string): readonly ScanToken[] | undefined {
  try {
    return scanSync(sql).tokens.filter((t) => t.tokenName !== "SQL_COMMENT" && t.tokenName !== "C_COMMENT");
  } catch {
    return undefined;
  }
}

/** Index of the token that starts at byte `start` (tokens are in order), or -1. */
function tokenAt(tokens: readonly ScanToken[], start: number): number {
  let lo = 0;
  let hi = tokens.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = (tokens[mid] as ScanToken).start;
    if (s === start) return mid;
    if (s < start) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function applyEdits(sql: string, edits: Edit[]): string {
  edits.sort((a, b) => a.start - b.start);
  let out = "";
  let at = 0;
  for (const e of edits) {
    if (e.start < at) continue;
    out += sql.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + sql.slice(at);
}

function locate(tokens: readonly ScanToken[], site: SecretSite): { start: number; end: number } | undefined {
  if (site.spot === "connection") {
    const end = site.stmtEnd ?? Infinity;
    for (let i = Math.max(0, tokenAt(tokens, site.stmtStart)); i < tokens.length; i++) {
      const t = tokens[i] as ScanToken;
      if (t.start >= end) break;
      // CREATE SUBSCRIPTION connection CONNECTION '...': the name is not followed by a string
      if (t.start >= site.stmtStart && lower(t) === "connection" && isStringToken(tokens[i + 1])) {
        return literalAt(tokens, i + 1);
      }
    }
    return undefined;
  }
  const at = tokenAt(tokens, site.at);
  if (at < 0) return undefined;
  if (site.spot === "literal") return literalAt(tokens, at);
  if (site.spot === "option") return literalAt(tokens, at + 1);
  return literalAfterPassword(tokens, lower(tokens[at]) === "encrypted" ? at + 1 : at);
}

/** The text of a parsed request with each secret replaced. */
export function redactSecrets(sql: string, sites: readonly SecretSite[]): string {
  const tokens = scan(sql);
  const index = byteToIndex(sql);
  const edits: Edit[] = [];
  const byStatement = new Map<number, SecretSite[]>();
  for (const site of sites) byStatement.set(site.stmtStart, [...(byStatement.get(site.stmtStart) ?? []), site]);
  for (const group of byStatement.values()) {
    const spans = group.map((site) => (tokens ? locate(tokens, site) : undefined));
    if (spans.every((s) => s !== undefined)) {
      for (const s of spans) edits.push({ start: index(s.start), end: index(s.end), text: REDACTED_PASSWORD });
    } else {
      const { stmtStart, stmtEnd, spot } = group[0] as SecretSite;
      const end = stmtEnd === undefined ? sql.length : index(stmtEnd);
      const text = spot === "role" ? REDACTED_STATEMENT : REDACTED_SECRET_STATEMENT;
      edits.push({ start: index(stmtStart), end, text });
    }
  }
  return applyEdits(sql, edits);
}

/** Whether an option-name token (a keyword, an identifier or a quoted identifier) names a password. */
function isSecretNameToken(token: ScanToken): boolean {
  const text = token.text.startsWith('"') ? token.text.slice(1, -1) : token.text;
  return isSecretOptionName(text);
}

/**
 * Text that did not parse has no tree to say where a secret is, yet may still be a CREATE ROLE or a USER MAPPING
 * with a typo: each string right after a password-named token (PASSWORD, an option such as sslpassword) and each
 * string that reads as a connection string with a password is replaced. If the text cannot even be scanned (an
 * unterminated quote, a NUL) and may hold a password, all of it is replaced.
 */
export function redactUnparsed(sql: string): string | undefined {
  if (!/passw/i.test(sql) && !uriHasPassword(sql)) return undefined;
  const tokens = sql.includes("\0") ? undefined : scan(sql);
  if (!tokens) return REDACTED_SECRET_STATEMENT;
  const index = byteToIndex(sql);
  const edits: Edit[] = [];
  tokens.forEach((token, i) => {
    let span: { start: number; end: number } | undefined;
    if (isStringToken(token)) span = conninfoHasPassword(token.text) ? literalAt(tokens, i) : undefined;
    else if (isSecretNameToken(token)) span = literalAt(tokens, i + 1);
    if (span) edits.push({ start: index(span.start), end: index(span.end), text: REDACTED_PASSWORD });
  });
  return edits.length > 0 ? applyEdits(sql, edits) : undefined;
}
