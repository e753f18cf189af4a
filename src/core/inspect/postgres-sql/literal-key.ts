/**
 * The literal-normalized form of a SQL text: `SELECT abalance FROM pgbench_accounts WHERE aid = 48213` and
 * `... aid = 7` share one key, so the analysis of one can be reused for the other (see templates.ts).
 *
 * This is a deliberately small lexer, not PostgreSQL's. It only has to agree with PostgreSQL on where the plain
 * literals are; whenever a text contains anything whose tokenization it does not fully understand it answers
 * undefined and the text takes the normal path (a real parse). It refuses:
 *   - `$` anywhere (dollar quotes, `$1` parameters), backslash anywhere, `/*` comments;
 *   - a quote right after an identifier character or `&` (E'', U&'', B'', X'', N'', U&"");
 *   - a number directly followed by an identifier character or a `.` (1x, 0x1F, 1_000, 1..2, 1.5.3, 1e);
 *   - control characters other than tab, newline and carriage return, and unpaired UTF-16 surrogates;
 *   - unterminated quotes.
 * It copies double-quoted identifiers (with "" escapes) and `--` comments into the key verbatim, reads '' inside
 * strings, and reads a string continued across a newline ('a'\n'b', one literal to PostgreSQL) as one literal.
 */

/** An integer PostgreSQL lexes as ICONST: decimal digits only, value at most 2^31-1. */
export const INTEGER_MARK = "\u0000";
/** A plain single-quoted string (standard_conforming_strings on). */
export const STRING_MARK = "\u0001";
/** Any other number (FCONST): a fraction, an exponent, or an integer too large for int32. */
export const NUMERIC_MARK = "\u0002";

/**
 * Integers and other numbers get different marks because the grammar tells them apart: `char(5)` is legal,
 * `char(5.5)` and `char(99999999999)` are syntax errors. The marks are control characters that the lexer refuses
 * in input, so no text can spell a key that another text produces.
 */

export interface LiteralKey {
  key: string;
  /** Each literal's [start, end) in the text, in UTF-16 units, flattened: [start0, end0, start1, end1, ...]. */
  spans: number[];
}

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const DQUOTE = 0x22;
const DOLLAR = 0x24;
const AMP = 0x26;
const SQUOTE = 0x27;
const STAR = 0x2a;
const PLUS = 0x2b;
const MINUS = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const BACKSLASH = 0x5c;

const INT32_MAX = "2147483647";

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** PostgreSQL's ident_cont without `$` (refused anyway): letters, digits, `_` and every non-ASCII character. */
function isIdentChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || isDigit(c) || c === 0x5f || c >= 0x80;
}

/** Characters the lexer refuses wherever they appear, also inside strings, identifiers and comments. */
function isRefused(c: number): boolean {
  return (c < SPACE && c !== TAB && c !== LF && c !== CR) || c === 0x7f || c === DOLLAR || c === BACKSLASH;
}

/**
 * Length of the character at i if it is acceptable (1, or 2 for a surrogate pair); 0 for a refused character or
 * an unpaired surrogate (which UTF-8 cannot carry: the parser would see U+FFFD, a slice of the string would not).
 */
function charLength(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c < 0xd800 || c > 0xdfff) return isRefused(c) ? 0 : 1;
  if (c >= 0xdc00) return 0;
  const low = text.charCodeAt(i + 1);
  return low >= 0xdc00 && low <= 0xdfff ? 2 : 0;
}

/** End of the string literal whose opening quote is at i, or -1. */
function stringEnd(text: string, i: number): number {
  const n = text.length;
  let j = i + 1;
  while (j < n) {
    const c = text.charCodeAt(j);
    if (c !== SQUOTE) {
      const len = charLength(text, j);
      if (len === 0) return -1;
      j += len;
      continue;
    }
    if (text.charCodeAt(j + 1) === SQUOTE) {
      j += 2; // '' is a quote inside the string
      continue;
    }
    // 'a'<whitespace with a newline>'b' is one string to PostgreSQL; a comment in between is not (a syntax error)
    let k = j + 1;
    let newline = false;
    for (; k < n; k++) {
      const w = text.charCodeAt(k);
      if (w === LF || w === CR) newline = true;
      else if (w !== SPACE && w !== TAB) break;
    }
    if (newline && text.charCodeAt(k) === SQUOTE) {
      j = k + 1;
      continue;
    }
    return j + 1;
  }
  return -1;
}

/** End of the double-quoted identifier whose opening quote is at i, or -1. */
function quotedIdentEnd(text: string, i: number): number {
  const n = text.length;
  let j = i + 1;
  while (j < n) {
    if (text.charCodeAt(j) === DQUOTE) {
      if (text.charCodeAt(j + 1) !== DQUOTE) return j + 1;
      j += 2;
      continue;
    }
    const len = charLength(text, j);
    if (len === 0) return -1;
    j += len;
  }
  return -1;
}

function skipDigits(text: string, j: number): number {
  while (isDigit(text.charCodeAt(j))) j++;
  return j;
}

/** End of the number starting at i (a digit, or a `.` before a digit), or -1; `integer`: digits only. */
function numberEnd(text: string, i: number): { end: number; integer: boolean } | undefined {
  let j = skipDigits(text, i);
  let integer = true;
  if (text.charCodeAt(j) === DOT) {
    // `1..2` is 1 then `..` to PostgreSQL
    if (text.charCodeAt(j + 1) === DOT) return undefined;
    j = skipDigits(text, j + 1);
    integer = false;
  }
  const e = text.charCodeAt(j);
  if (e === 0x65 || e === 0x45) {
    let k = j + 1;
    const sign = text.charCodeAt(k);
    if (sign === PLUS || sign === MINUS) k++;
    if (!isDigit(text.charCodeAt(k))) return undefined;
    j = skipDigits(text, k);
    integer = false;
  }
  const after = text.charCodeAt(j);
  if (isIdentChar(after) || after === DOT) return undefined;
  return { end: j, integer };
}

/** Whether PostgreSQL's lexer makes these decimal digits an ICONST (it makes any larger value an FCONST). */
function fitsInt32(digits: string): boolean {
  let k = 0;
  while (k < digits.length - 1 && digits.charCodeAt(k) === 0x30) k++;
  const significant = digits.length - k;
  return significant < INT32_MAX.length || (significant === INT32_MAX.length && digits.slice(k) <= INT32_MAX);
}

/** The key of `text`, or undefined when the text has anything this lexer does not fully understand. */
export function literalKey(text: string): LiteralKey | undefined {
  const n = text.length;
  const spans: number[] = [];
  let key = "";
  let copied = 0; // text[copied, i) is not yet in the key
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    const prev = i > 0 ? text.charCodeAt(i - 1) : SPACE;

    if (c === SQUOTE) {
      if (isIdentChar(prev) || prev === AMP) return undefined;
      const end = stringEnd(text, i);
      if (end < 0) return undefined;
      key += text.slice(copied, i) + STRING_MARK;
      spans.push(i, end);
      copied = i = end;
      continue;
    }

    if (isDigit(c) || (c === DOT && isDigit(text.charCodeAt(i + 1)))) {
      // `a..5` is a, `..`, 5 to PostgreSQL
      if (prev === DOT) return undefined;
      const num = numberEnd(text, i);
      if (num === undefined) return undefined;
      const mark = num.integer && fitsInt32(text.slice(i, num.end)) ? INTEGER_MARK : NUMERIC_MARK;
      key += text.slice(copied, i) + mark;
      spans.push(i, num.end);
      copied = i = num.end;
      continue;
    }

    if (isIdentChar(c)) {
      // an identifier or keyword: its digits are part of it (t1), it is copied as it is
      while (i < n && isIdentChar(text.charCodeAt(i))) {
        const len = charLength(text, i);
        if (len === 0) return undefined;
        i += len;
      }
      continue;
    }

    if (c === DQUOTE) {
      if (isIdentChar(prev) || prev === AMP) return undefined;
      const end = quotedIdentEnd(text, i);
      if (end < 0) return undefined;
      i = end;
      continue;
    }

    if (c === MINUS && text.charCodeAt(i + 1) === MINUS) {
      // a comment runs to the end of the line, quotes and all
      i += 2;
      while (i < n) {
        const w = text.charCodeAt(i);
        if (w === LF || w === CR) break;
        const len = charLength(text, i);
        if (len === 0) return undefined;
        i += len;
      }
      continue;
    }

    if (c === SLASH && text.charCodeAt(i + 1) === STAR) return undefined;
    if (isRefused(c)) return undefined;
    i++;
  }
  if (copied < n) key += text.slice(copied);
  return { key, spans };
}

/** The text offset of a key offset, for the text whose literals are `spans`. Offsets at a mark map to its start. */
export function keyToText(spans: readonly number[], keyOffset: number): number {
  let shift = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const start = spans[i] as number;
    const mark = start - shift;
    if (keyOffset <= mark) break;
    shift += (spans[i + 1] as number) - start - 1;
  }
  return keyOffset + shift;
}

/** The key offset of a text offset; undefined if it falls strictly inside a literal. */
export function textToKey(spans: readonly number[], textOffset: number): number | undefined {
  let shift = 0;
  for (let i = 0; i < spans.length; i += 2) {
    const start = spans[i] as number;
    const end = spans[i + 1] as number;
    if (textOffset <= start) break;
    if (textOffset < end) return undefined;
    shift += end - start - 1;
  }
  return textOffset - shift;
}
