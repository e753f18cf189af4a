import { scanSync, type ScanToken } from "libpg-query";
import { asList, nodeOf, type Fields } from "./node.js";
import { byteToIndex } from "./text.js";

/**
 * Role passwords in statement text. `CREATE ROLE r PASSWORD 'x'` carries a secret that evidence and approvers must
 * not see; SqlAnalysis.redacted is the text with each such string literal replaced by '********'. The literal is
 * found with PostgreSQL's own scanner (libpg-query scan), starting at the PASSWORD option's location in the parse
 * tree; where that does not lead to exactly one string token, the whole statement is replaced instead.
 */

export const REDACTED_PASSWORD = "'********'";
export const REDACTED_STATEMENT = "<statement redacted: role password>";

/** Where a statement sets a role password: the option's byte offset and the statement's byte range. */
export interface PasswordSite {
  option: number;
  stmtStart: number;
  stmtEnd: number | undefined;
}

/**
 * Byte offsets of the PASSWORD options that carry a value (not PASSWORD NULL) in CREATE ROLE/USER/GROUP and
 * ALTER ROLE/USER. The offset is that of the PASSWORD keyword, or of ENCRYPTED before it; -1 if the tree has none.
 */
export function passwordOptions(type: string, fields: Fields): number[] {
  if (type !== "CreateRoleStmt" && type !== "AlterRoleStmt") return [];
  const out: number[] = [];
  for (const option of asList(fields.options)) {
    const def = nodeOf(option, "DefElem");
    if (def?.defname !== "password" || def.arg === undefined || def.arg === null) continue;
    out.push(typeof def.location === "number" ? def.location : -1);
  }
  return out;
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
 * The byte range of the string literal that follows PASSWORD at token i, with its UESCAPE clause if any, with the
 * N of N'...' (which the scanner reports as a token of its own), and with any strings directly after it.
 */
function literalAfterPassword(tokens: readonly ScanToken[], i: number): { start: number; end: number } | undefined {
  if (lower(tokens[i]) !== "password") return undefined;
  let at = i + 1;
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
  // more strings right after it can only be a mistyped password (a syntax error): they go too
  while (isStringToken(tokens[at + 1])) end = (tokens[++at] as ScanToken).end;
  return { start, end };
}

/** The text's tokens without comments (the scanner reports those too), or undefined if it cannot be scanned. */
function scan(sql: string): readonly ScanToken[] | undefined {
  try {
    return scanSync(sql).tokens.filter((t) => t.tokenName !== "SQL_COMMENT" && t.tokenName !== "C_COMMENT");
  } catch {
    return undefined;
  }
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

/** The text of a parsed request with each role password replaced. */
export function redactPasswords(sql: string, sites: readonly PasswordSite[]): string {
  const tokens = scan(sql);
  const index = byteToIndex(sql);
  const edits: Edit[] = [];
  const byStatement = new Map<number, PasswordSite[]>();
  for (const site of sites) byStatement.set(site.stmtStart, [...(byStatement.get(site.stmtStart) ?? []), site]);
  for (const group of byStatement.values()) {
    const spans = group.map((site) => {
      if (!tokens) return undefined;
      const at = tokens.findIndex((t) => t.start === site.option);
      if (at < 0) return undefined;
      return literalAfterPassword(tokens, lower(tokens[at]) === "encrypted" ? at + 1 : at);
    });
    if (spans.every((s) => s !== undefined)) {
      for (const s of spans) edits.push({ start: index(s.start), end: index(s.end), text: REDACTED_PASSWORD });
    } else {
      const { stmtStart, stmtEnd } = group[0] as PasswordSite;
      const end = stmtEnd === undefined ? sql.length : index(stmtEnd);
      edits.push({ start: index(stmtStart), end, text: REDACTED_STATEMENT });
    }
  }
  return applyEdits(sql, edits);
}

/**
 * Text that did not parse has no tree to say where a password is, yet may still be a CREATE ROLE with a typo: each
 * string token right after a PASSWORD keyword is replaced. If the text cannot even be scanned (an unterminated
 * quote, a NUL) and mentions a password, all of it is replaced.
 */
export function redactUnparsed(sql: string): string | undefined {
  if (!/password/i.test(sql)) return undefined;
  const tokens = sql.includes("\0") ? undefined : scan(sql);
  if (!tokens) return REDACTED_STATEMENT;
  const index = byteToIndex(sql);
  const edits: Edit[] = [];
  tokens.forEach((_, i) => {
    const span = literalAfterPassword(tokens, i);
    if (span) edits.push({ start: index(span.start), end: index(span.end), text: REDACTED_PASSWORD });
  });
  return edits.length > 0 ? applyEdits(sql, edits) : undefined;
}
