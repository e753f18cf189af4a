import { describe, expect, it } from "vitest";
import {
  INTEGER_MARK as I,
  keyToText,
  literalKey,
  NUMERIC_MARK as N,
  STRING_MARK as S,
  textToKey,
} from "./literal-key.js";

/** The literals of `sql` as the lexer delimits them. */
function literals(sql: string): string[] | undefined {
  const k = literalKey(sql);
  if (!k) return undefined;
  const out: string[] = [];
  for (let i = 0; i < k.spans.length; i += 2) out.push(sql.slice(k.spans[i], k.spans[i + 1]));
  return out;
}

describe("literal key", () => {
  it("replaces numbers and strings, keeps everything else", () => {
    const k = literalKey("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;");
    expect(k).toEqual({ key: `SELECT abalance FROM pgbench_accounts WHERE aid = ${I};`, spans: [50, 55] });
    expect(literalKey("UPDATE t SET a = 'x', b = 1.5 WHERE c = 3")?.key).toBe(
      `UPDATE t SET a = ${S}, b = ${N} WHERE c = ${I}`,
    );
    expect(literalKey("SELECT 1")?.key).toBe(literalKey("SELECT 2147483647")?.key);
    expect(literalKey("SELECT 'a'")?.key).toBe(literalKey("SELECT 'a much longer ''string'''")?.key);
  });

  it("a text without literals is its own key", () => {
    expect(literalKey("SELECT a FROM t")).toEqual({ key: "SELECT a FROM t", spans: [] });
    expect(literalKey("")).toEqual({ key: "", spans: [] });
  });

  it("integers that fit int32 (ICONST) and other numbers (FCONST) get different marks", () => {
    const cases: [string, string][] = [
      ["0", I],
      ["00", I],
      ["2147483647", I],
      ["0002147483647", I],
      ["2147483648", N],
      ["02147483648", N],
      ["99999999999", N],
      ["1.5", N],
      [".5", N],
      ["1.", N],
      ["1e5", N],
      ["1E+10", N],
      ["1e-5", N],
      ["1.e5", N],
      [".5e3", N],
    ];
    for (const [num, mark] of cases) expect(literalKey(`SELECT ${num} FROM t`)?.key, num).toBe(`SELECT ${mark} FROM t`);
  });

  it("digits in identifiers are not literals", () => {
    expect(literals("SELECT t1.c2 FROM t1, x1y2, é1, _9 WHERE a = 1")).toEqual(["1"]);
    expect(literals('SELECT "col 1", "a""b 2" FROM "t""1"')).toEqual([]);
  });

  it("a minus sign is not part of the literal", () => {
    expect(literalKey("SELECT -5, - 5, 3-2")?.key).toBe(`SELECT -${I}, - ${I}, ${I}-${I}`);
  });

  it("`.5` after an identifier is a number, as PostgreSQL lexes it", () => {
    expect(literals("SELECT x.5")).toEqual([".5"]);
    expect(literals("SELECT t.a FROM s.t")).toEqual([]);
  });

  it("strings: doubled quotes, continuation across a newline, adjacent strings without one", () => {
    expect(literals("SELECT 'it''s', ''''")).toEqual(["'it''s'", "''''"]);
    // PostgreSQL reads 'a'<newline>'b' as the one string 'ab'
    expect(literals("SELECT 'a'\n'b', 'c' \r\n\t 'd'")).toEqual(["'a'\n'b'", "'c' \r\n\t 'd'"]);
    // without a newline (or with a comment between) they are two tokens, and a syntax error
    expect(literals("SELECT 'a' 'b'")).toEqual(["'a'", "'b'"]);
    expect(literals("SELECT 'a' -- c\n'b'")).toEqual(["'a'", "'b'"]);
    expect(literals("SELECT 'é€😀', 'x'")).toEqual(["'é€😀'", "'x'"]);
  });

  it("quotes and digits inside comments, strings and quoted identifiers are not literals", () => {
    expect(literals("SELECT a -- it's 5 o'clock\nFROM t WHERE b = 'x'")).toEqual(["'x'"]);
    expect(literals("-- leading comment 'q' 7\nSELECT 1")).toEqual(["1"]);
    expect(literals("SELECT '-- not a comment', '/* nor this */', 'a\"b'")).toEqual([
      "'-- not a comment'",
      "'/* nor this */'",
      "'a\"b'",
    ]);
    expect(literals(`SELECT "it's", "1", """" FROM t`)).toEqual([]);
    expect(literals("SELECT 1 -- no newline at the end 'x")).toEqual(["1"]);
  });

  it("several statements", () => {
    const sql = "SELECT 1; UPDATE t SET a = 'x' WHERE id = 2.5;\nDELETE FROM t WHERE id = 3;";
    expect(literals(sql)).toEqual(["1", "'x'", "2.5", "3"]);
    expect(literalKey(sql)?.key).toBe(
      `SELECT ${I}; UPDATE t SET a = ${S} WHERE id = ${N};\nDELETE FROM t WHERE id = ${I};`,
    );
  });

  it("refuses what it does not fully understand", () => {
    const refused = [
      // dollar quotes and parameters, anywhere
      "SELECT $1",
      "SELECT $$a$$",
      "SELECT $tag$x$tag$",
      "SELECT 1 -- $",
      "SELECT 'a$b'",
      'SELECT "a$b"',
      "SELECT a$b",
      // backslashes, anywhere
      "SELECT '\\'",
      "SELECT 1 -- \\",
      'SELECT "a\\b"',
      // block comments
      "SELECT /* c */ 1",
      "SELECT 1 /*",
      // quotes with a prefix
      "SELECT E'a'",
      "SELECT e'a'",
      "SELECT U&'a'",
      "SELECT u&'a'",
      "SELECT B'01'",
      "SELECT X'ff'",
      "SELECT N'a'",
      'SELECT U&"a"',
      "SELECT a'x'",
      "SELECT 1'x'",
      "SELECT é'x'",
      'SELECT a"x"',
      "SELECT &'x'",
      // numbers running into something else
      "SELECT 1x",
      "SELECT 1from t",
      "SELECT 0x1F",
      "SELECT 0o17",
      "SELECT 0b101",
      "SELECT 1_000",
      "SELECT 1..2",
      "SELECT 1.5.3",
      "SELECT a..5",
      "SELECT 1e",
      "SELECT 1e+",
      "SELECT 1e+x",
      "SELECT 1ex",
      "SELECT 1.5e3x",
      "SELECT 1é",
      // unterminated quotes
      "SELECT 'abc",
      "SELECT 'it''s",
      'SELECT "abc',
      // control characters (the marks themselves among them) and unpaired surrogates
      "SELECT 1\0",
      "SELECT \u0001",
      "SELECT '\u0002'",
      "SELECT 1 -- \u0000",
      "SELECT 1\f",
      "SELECT 1\v",
      "SELECT 1\x7f",
      "SELECT '\ud800'",
      "SELECT x\udc00",
      "SELECT 1 -- \ud83d",
    ];
    for (const sql of refused) expect(literalKey(sql), JSON.stringify(sql)).toBeUndefined();
    // a pair is fine
    expect(literals("SELECT '😀', é😀 FROM t")).toEqual(["'😀'"]);
  });

  it("maps offsets between a text and its key", () => {
    const sql = "SELECT 'abc', 12345; SELECT 7";
    const k = literalKey(sql);
    if (!k) throw new Error("no key");
    expect(k.key).toBe(`SELECT ${S}, ${I}; SELECT ${I}`);
    // statement boundaries: 0..19 and 21..end
    expect(textToKey(k.spans, 0)).toBe(0);
    expect(textToKey(k.spans, 19)).toBe(k.key.indexOf(";"));
    expect(textToKey(k.spans, 21)).toBe(k.key.indexOf(";") + 2);
    expect(textToKey(k.spans, 9)).toBeUndefined(); // inside 'abc'
    expect(textToKey(k.spans, 7)).toBe(7); // a literal's start
    expect(textToKey(k.spans, 12)).toBe(8); // a literal's end
    for (const off of [0, 7, 8, 9, 10, 11, 12, 13, 17]) expect(textToKey(k.spans, keyToText(k.spans, off))).toBe(off);
    // the same key offsets land on the right places in another text with that key
    const other = "SELECT '', 1; SELECT 2147483647";
    const o = literalKey(other);
    if (!o) throw new Error("no key");
    expect(o.key).toBe(k.key);
    const end = textToKey(k.spans, 19) as number;
    expect(other.slice(0, keyToText(o.spans, end))).toBe("SELECT '', 1");
    expect(other.slice(keyToText(o.spans, textToKey(k.spans, 21) as number))).toBe("SELECT 2147483647");
  });
});
