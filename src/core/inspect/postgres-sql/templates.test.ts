import fc from "fast-check";
import { fingerprintSync } from "libpg-query";
import { beforeAll, describe, expect, it } from "vitest";
import { PostgresSqlAnalyzer } from "./analyzer.js";
import { TEMPLATE_MAX_TEXT } from "./templates.js";
import { visible } from "./test-helpers.js";

/**
 * The literal-template cache must never change what analyze() reports: every result served from a template is
 * compared with what a real parse says.
 */

let reference: PostgresSqlAnalyzer;
beforeAll(async () => {
  reference = await PostgresSqlAnalyzer.load({ cacheSize: 0, templateCacheSize: 0 });
});

const fresh = () => PostgresSqlAnalyzer.load({ cacheSize: 0 });

/** Analyzes `texts` in order with one templated analyzer; each result must equal the real parse. */
async function expectSameAsParse(texts: string[]): Promise<PostgresSqlAnalyzer> {
  const templated = await fresh();
  for (const sql of texts)
    expect(visible(templated.analyze(sql)), JSON.stringify(sql)).toEqual(visible(reference.analyze(sql)));
  return templated;
}

describe("template hits", () => {
  it("texts that differ only in literals are analyzed once", async () => {
    const a = await PostgresSqlAnalyzer.load();
    const first = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;");
    expect(a.stats).toEqual({ exactHits: 0, templateHits: 0, templates: 1 });
    const second = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 7;");
    expect(a.stats.templateHits).toBe(1);
    expect(second.facts).toBe(first.facts);
    expect(second.statements).toEqual([
      { kind: "select", text: "SELECT abalance FROM pgbench_accounts WHERE aid = 7", tables: ["pgbench_accounts"] },
    ]);
    expect(second.fingerprint).toBe(first.fingerprint);
    // template hits do not enter the exact cache: the next call is a template hit again
    a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 7;");
    expect(a.stats).toEqual({ exactHits: 0, templateHits: 2, templates: 1 });
    // ...and the text the template came from is an exact hit
    expect(a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;")).toBe(first);
    expect(a.stats.exactHits).toBe(1);
  });

  it("once a hit's fingerprint was read, later hits carry it as a plain member (one shape for every hit)", async () => {
    const a = await PostgresSqlAnalyzer.load();
    a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 1");
    const first = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 2");
    expect(Object.getOwnPropertyDescriptor(first, "fingerprint")?.get).toBeTypeOf("function");
    const print = first.fingerprint;
    expect(print).toBe(fingerprintSync("SELECT abalance FROM pgbench_accounts WHERE aid = 2"));
    const later = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 3");
    expect(Object.getOwnPropertyDescriptor(later, "fingerprint")).toMatchObject({ value: print, enumerable: true });
    expect(Object.isFrozen(later)).toBe(true);
    expect(visible(later)).toEqual(visible(reference.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 3")));
  });

  it("results from a template are frozen", async () => {
    const a = await PostgresSqlAnalyzer.load();
    a.analyze("DELETE FROM t WHERE id = 1");
    const hit = a.analyze("DELETE FROM t WHERE id = 2");
    expect(a.stats.templateHits).toBe(1);
    expect(Object.isFrozen(hit) && Object.isFrozen(hit.statements) && Object.isFrozen(hit.statements[0])).toBe(true);
    expect(Object.isFrozen(hit.facts.statements[0])).toBe(true);
    expect(() => {
      (hit.statements[0] as { kind: string }).kind = "select";
    }).toThrow(TypeError);
  });

  it("each statement's text is cut from the new text, multi-byte characters included", async () => {
    const a = await expectSameAsParse([
      "SELECT 'é€😀' AS x;  -- c\n DELETE FROM \"Ü\" WHERE a = 'ß' ;\nSELECT 2",
      "SELECT 'a' AS x;  -- c\n DELETE FROM \"Ü\" WHERE a = 'long 😀😀 string''s' ;\nSELECT 2147483647",
      "SELECT 'a'\n'b' AS x;  -- c\n DELETE FROM \"Ü\" WHERE a = '' ;\nSELECT 0",
    ]);
    expect(a.stats.templateHits).toBe(2);
  });

  it("negative numbers, continued strings and typed literals", async () => {
    const a = await expectSameAsParse([
      "UPDATE t SET a = -5, b = - -7, c = int4 '3', d = interval '1' second(3) WHERE id = 'x'\n'y'",
      "UPDATE t SET a = -2147483647, b = - -0, c = int4 '', d = interval 'abc' second(9) WHERE id = ''",
    ]);
    expect(a.stats.templateHits).toBe(1);
  });

  it("libpg-query fingerprints ignore literal values, which is what lets a template share its fingerprint", () => {
    const groups = [
      ["SELECT a FROM t WHERE x = 1", "SELECT a FROM t WHERE x = 2147483647", "SELECT a FROM t WHERE x = -3"],
      [
        "SELECT a FROM t WHERE x = 'a'",
        "SELECT a FROM t WHERE x = 'a much longer one'",
        "SELECT a FROM t WHERE x = ''",
      ],
      ["SELECT x::char(5) LIMIT 1.5", "SELECT x::char(999) LIMIT 2.5e10"],
      ["INSERT INTO t VALUES (1, 'a', 2.5)", "INSERT INTO t VALUES (-7, 'zz', 1e99)"],
    ];
    for (const group of groups) {
      const prints = new Set(group.map((sql) => fingerprintSync(sql)));
      expect(prints.size, group[0]).toBe(1);
    }
  });

  it("function names are outside the literals: a template carries its calls, another name is another key", async () => {
    const a = await expectSameAsParse([
      "SELECT pg_terminate_backend(123)",
      "SELECT pg_terminate_backend(456)",
      "UPDATE t SET a = set_config('role', 'x', false) WHERE id = 1",
      "UPDATE t SET a = set_config('role', 'postgres', false) WHERE id = 2",
      "SELECT pg_cancel_backend(456)",
    ]);
    expect(a.stats).toEqual({ exactHits: 0, templateHits: 2, templates: 3 });
    const hit = a.analyze("SELECT pg_terminate_backend(789)");
    expect(a.stats.templateHits).toBe(3);
    expect(hit.facts.statements).toEqual([{ kind: "select", tables: [], functions: ["pg_terminate_backend"] }]);
    expect(hit.statements).toEqual([
      { kind: "select", text: "SELECT pg_terminate_backend(789)", tables: [], functions: ["pg_terminate_backend"] },
    ]);
    expect(a.analyze("SELECT pg_cancel_backend(789)").facts.statements[0]?.functions).toEqual(["pg_cancel_backend"]);
  });

  it("templateCacheSize 0 turns templates off", async () => {
    const a = await PostgresSqlAnalyzer.load({ templateCacheSize: 0 });
    a.analyze("SELECT 1 FROM t");
    a.analyze("SELECT 2 FROM t");
    expect(a.stats).toEqual({ exactHits: 0, templateHits: 0, templates: 0 });
  });

  it("texts longer than the template limit are always parsed", async () => {
    const a = await PostgresSqlAnalyzer.load();
    a.analyze("SELECT 'x' FROM t");
    const long = "SELECT '" + "y".repeat(TEMPLATE_MAX_TEXT) + "' FROM t";
    expect(visible(a.analyze(long))).toEqual(visible(reference.analyze(long)));
    expect(a.stats.templateHits).toBe(0);
  });
});

describe("what is never a template", () => {
  it("SET: 'on' must not stand for 'off'", async () => {
    const a = await expectSameAsParse([
      "SET standard_conforming_strings = 'on'",
      "SET standard_conforming_strings = 'off'",
      "SET client_encoding = 'UTF8'",
      "SET client_encoding = 'SJIS'",
      "SELECT 1; SET standard_conforming_strings = 'on'",
      "SELECT 2; SET standard_conforming_strings = 'off'",
    ]);
    expect(a.analyze("SET standard_conforming_strings = 'off'").facts.unparseable).toBeDefined();
    expect(a.analyze("SELECT 3; SET standard_conforming_strings = 'off'").facts.unparseable).toBeDefined();
    expect(a.stats).toEqual({ exactHits: 0, templateHits: 0, templates: 0 });
  });

  it("COPY, DROP, role statements, EXPLAIN, PREPARE, EXECUTE, SELECT INTO", async () => {
    const a = await expectSameAsParse([
      "EXECUTE p(1)",
      "EXECUTE q(1)",
      "EXECUTE p(2)",
      "EXPLAIN ANALYZE EXECUTE q(2)",
      "COPY t FROM 'a'",
      "COPY t FROM 'b'",
      "COPY (SELECT 1) TO STDOUT",
      "DROP TABLE t; SELECT 1",
      "ALTER ROLE r PASSWORD 'one'",
      "ALTER ROLE r PASSWORD 'two'",
      "EXPLAIN SELECT 1",
      "PREPARE p AS SELECT 1",
      "SELECT 1 INTO t2",
      "CREATE TABLE t AS SELECT 1",
      "SELECT 1; CREATE ROLE r",
    ]);
    expect(a.stats).toEqual({ exactHits: 0, templateHits: 0, templates: 0 });
  });

  it("dblink calls: whether an argument is redacted depends on its value", async () => {
    const a = await expectSameAsParse([
      "SELECT dblink_connect('c', 'host=h')",
      "SELECT dblink_connect('c', 'host=h password=sekrit')",
      "SELECT * FROM dblink('host=h', 'SELECT 1') AS t(a int)",
      "SELECT * FROM dblink('postgresql://u:sekrit@h/d', 'SELECT 1') AS t(a int)",
      "SELECT \"dblink_exec\"('c', 'DELETE FROM t')",
      "SELECT \"dblink_exec\"('password=sekrit', 'DELETE FROM t')",
    ]);
    expect(a.stats).toEqual({ exactHits: 0, templateHits: 0, templates: 0 });
  });

  it("literals the grammar consumes itself", async () => {
    // float(p) picks float4/float8 (or errors) by value; int[n] and CURRENT_TIME(n) keep n outside any A_Const
    const a = await expectSameAsParse([
      "SELECT x::float(5)",
      "SELECT x::float(30)",
      "SELECT x::float(0)",
      "SELECT x::float(54)",
      "SELECT x::int[5]",
      "SELECT x::int[6]",
      "SELECT CURRENT_TIMESTAMP(3)",
      "SELECT CURRENT_TIMESTAMP(4)",
    ]);
    expect(a.stats.templateHits).toBe(0);
  });

  it("integers and other numbers are different keys: char(5) does not stand for char(5.5)", async () => {
    const a = await expectSameAsParse([
      "SELECT x::char(5)",
      "SELECT x::char(6)",
      "SELECT x::char(5.5)",
      "SELECT x::char(99999999999)",
      "SELECT x::char(2147483648)",
      "SELECT x::char(02147483648)",
      "SELECT x::char(2147483647)",
      // leading zeros do not count: this is an integer, and must not make a template for 1.5
      "SELECT x::varchar(0002147483647)",
      "SELECT x::varchar(1.5)",
      "SELECT x::varchar(2147483648)",
    ]);
    expect(a.stats.templateHits).toBe(2);
    expect(a.analyze("SELECT x::char(2147483648)").error).toMatch(/syntax error/);
  });

  it("numbers running into identifiers and keywords are parsed for real", async () => {
    await expectSameAsParse([
      "SELECT 1 FROM t",
      "SELECT 1x FROM t",
      "SELECT 1from t",
      "SELECT 0x1F FROM t",
      "SELECT 1_000 FROM t",
      "SELECT 1..2 FROM t",
      "SELECT 1 .5 FROM t",
      "SELECT x.5 FROM t",
    ]);
  });

  it("adjacent strings: one literal across a newline, a syntax error without one", async () => {
    const a = await expectSameAsParse([
      "SELECT 'ab' FROM t",
      "SELECT 'a'\n'b' FROM t",
      "SELECT 'a' 'b' FROM t",
      "SELECT 'c' 'd' FROM t",
      "SELECT 'a' -- c\n'b' FROM t",
      "SELECT 'c' -- c\n'd' FROM t",
    ]);
    expect(a.stats.templateHits).toBe(1);
  });

  it("an error is never a template", async () => {
    const a = await expectSameAsParse(["SELECT 1 FROM", "SELECT 2 FROM", "SELEC 1", "SELEC 2"]);
    expect(a.stats.templates).toBe(0);
  });
});

/**
 * Statements from a small grammar. `#` is a slot for a literal; separators between words vary per case. Each case
 * fills the slots several times, mostly with literals of one class (so templates are hit), sometimes with anything
 * (so keys that must differ are tried), and every text goes through a templated analyzer and a plain one.
 */
const SHAPES = [
  "SELECT # FROM t WHERE a = #",
  "SELECT a , # AS x FROM s.t WHERE b > # AND c = # ORDER BY 1 LIMIT #",
  "SELECT x::char(#) , x::numeric(# , #) , x::float(#) FROM t",
  "SELECT CURRENT_TIMESTAMP(#) , x::int[#] , interval # second(#)",
  "SELECT - # , - - # , x @- # , # - #",
  "SELECT -(#) FROM t",
  "SELECT # # FROM t",
  "SELECT int4 # , # ::text , (#).x",
  "SELECT * FROM t# WHERE a#b = #",
  "SELECT #from t",
  "SELECT a.# FROM t",
  'SELECT \'a#b\' , "c#d" FROM "T 1"',
  "INSERT INTO t (a , b) VALUES (# , #) , (# , #)",
  "INSERT INTO t (a) VALUES (#) ON CONFLICT (a) DO UPDATE SET b = #",
  "UPDATE t SET a = # WHERE id = #",
  "UPDATE t SET a = #",
  "UPDATE t SET a = # WHERE # = #",
  "DELETE FROM t WHERE id IN (# , #)",
  "DELETE FROM t WHERE #",
  "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.v > # THEN UPDATE SET v = # WHEN NOT MATCHED THEN INSERT VALUES (#)",
  "WITH d AS (DELETE FROM t WHERE a = # RETURNING *) SELECT * FROM d WHERE b = #",
  "SELECT * FROM (SELECT # AS a) q JOIN u ON u.id = q.a",
  "SET standard_conforming_strings = #",
  "SET client_encoding = #",
  "SET search_path = #",
  "SET LOCAL work_mem = #",
  "COPY t FROM #",
  "COPY t TO PROGRAM #",
  "COPY (SELECT #) TO STDOUT",
  "DROP TABLE t#",
  "ALTER USER u PASSWORD #",
  "CREATE ROLE r LOGIN PASSWORD # VALID UNTIL #",
  "EXPLAIN SELECT #",
  "PREPARE p AS SELECT # FROM t",
  "SELECT # INTO t2 FROM t",
  "SELECT pg_sleep(#) , set_config(# , # , false) FROM t WHERE f(a) = #",
  "SELECT * FROM pg_read_file(#) AS r WHERE # < now() ORDER BY lower(#)",
  "UPDATE t SET a = lower(#) WHERE id = abs(#) RETURNING g(#)",
  'SELECT f#(#) , s.g(#) , "F"(#)',
  "CALL p(#)",
];

const INTEGER = ["0", "1", "5", "7", "53", "54", "2147483647", "02147483647", "00"];
const NUMERIC = ["1.5", ".5", "7.", "1e5", "1E+10", "2.5e-3", "2147483648", "02147483648", "99999999999", "1.e5"];
const STRING = [
  "'x'",
  "''",
  "'on'",
  "'off'",
  "'UTF8'",
  "'SJIS'",
  "'it''s'",
  "'a'\n'b'",
  "'é€😀'",
  "'-- not a comment'",
  "'/* not a comment */'",
  "'; DROP TABLE t; --'",
  "'\"'",
];
// texts the lexer refuses, or where a literal runs into its neighbours
const OTHER = [
  "$1",
  "$$x$$",
  "E'\\n'",
  "U&'a'",
  "B'01'",
  "1x",
  "0x1F",
  "1_000",
  "1..2",
  "x",
  "t.a",
  "-1",
  "NULL",
  "true",
  "/* c */ 1",
  "1 -- c\n",
  "'unterminated",
  "'a' 'b'",
];
const LITERALS = [...INTEGER, ...NUMERIC, ...STRING, ...OTHER];
const separator = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom(" ", " ", " ", "  ", "\n", "\t", " -- note 'q' 5\n", "\r\n") },
  // the lexer refuses block comments: rare, or few texts would use templates at all
  { weight: 1, arbitrary: fc.constant(" /* c */ ") },
);

const filler = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(INTEGER, NUMERIC, STRING).map((pool) => ({ pool })) },
  { weight: 1, arbitrary: fc.constant({ pool: LITERALS }) },
);

const statement = fc.record({
  shape: fc.constantFrom(...SHAPES),
  separators: fc.array(separator, { minLength: 1, maxLength: 6 }),
  slots: fc.array(filler, { minLength: 8, maxLength: 8 }),
});

const testCase = fc.record({
  statements: fc.oneof(
    { weight: 3, arbitrary: fc.array(statement, { minLength: 1, maxLength: 1 }) },
    { weight: 1, arbitrary: fc.array(statement, { minLength: 2, maxLength: 3 }) },
  ),
  joiner: fc.constantFrom(";", "; ", ";\n", " ;  -- c\n", ";;"),
  trailing: fc.constantFrom("", ";", " ; ", "\n"),
  leading: fc.constantFrom("", "-- first 'x' 1\n", "  "),
  picks: fc.array(fc.array(fc.nat(), { minLength: 24, maxLength: 24 }), { minLength: 2, maxLength: 4 }),
});

type Case = typeof testCase extends fc.Arbitrary<infer C> ? C : never;

function render(c: Case, picks: number[]): string {
  let slot = 0;
  const texts = c.statements.map((s) => {
    let word = 0;
    const withSeparators = s.shape.replace(/ /g, () => s.separators[word++ % s.separators.length] as string);
    return withSeparators.replace(/#/g, () => {
      const fill = s.slots[slot % s.slots.length] as { pool: string[] };
      const pick = picks[slot++ % picks.length] as number;
      return fill.pool[pick % fill.pool.length] as string;
    });
  });
  return c.leading + texts.join(c.joiner) + c.trailing;
}

describe("templates never change an analysis", () => {
  it("generated statements: templated analysis equals a real parse", async () => {
    let hits = 0;
    let texts = 0;
    await fc.assert(
      fc.asyncProperty(testCase, async (c) => {
        const templated = await fresh();
        for (const picks of c.picks) {
          const sql = render(c, picks);
          texts++;
          expect(visible(templated.analyze(sql)), JSON.stringify(sql)).toEqual(visible(reference.analyze(sql)));
        }
        hits += templated.stats.templateHits;
      }),
      { numRuns: 2000 },
    );
    // the property only means something if templates were used a lot
    expect(hits).toBeGreaterThan(texts / 10);
  });

  it("random literal values where the grammar looks at literals: templated analysis equals a real parse", async () => {
    const digits = fc
      .tuple(
        fc.constantFrom("", "", "0", "000"),
        fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: 1, maxLength: 11 }),
      )
      .map(([zeros, d]) => zeros + d);
    const number = fc.oneof(
      { weight: 3, arbitrary: digits },
      { weight: 1, arbitrary: fc.constantFrom("2147483647", "2147483648", "02147483647", "4294967296", "0") },
      { weight: 1, arbitrary: fc.tuple(digits, digits).map(([a, b]) => `${a}.${b}`) },
      { weight: 1, arbitrary: digits.map((b) => `.${b}`) },
      { weight: 1, arbitrary: digits.map((a) => `${a}.`) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(digits, fc.constantFrom("e", "E", "e+", "e-"), digits)
          .map(([a, e, b]) => `${a}${e}${b.slice(0, 3)}`),
      },
    );
    const string = fc
      .string({ unit: fc.constantFrom(..."ab 09-;'\"\n\té😀/*"), maxLength: 12 })
      .map((s) => `'${s.replace(/'/g, "''")}'`);
    const shapes = [
      "SELECT x::char(#), x::varchar(#) FROM t",
      "SELECT x::timestamp(#), x::time(#) with time zone, interval # second(#)",
      "SELECT x FROM t ORDER BY # LIMIT # OFFSET #",
      "SELECT x FROM t FETCH FIRST # ROWS ONLY",
      "SELECT x::float(#), x::numeric(#, #), x::bit(#)",
      "SELECT x::int[#], CURRENT_TIME(#), LOCALTIMESTAMP(#)",
      "UPDATE t SET a = # WHERE b = #",
      "SELECT -#, - #, - - #, #-#",
      "SELECT #::int, int4 #, #::text",
      "DELETE FROM t WHERE a = # AND b IN (#, #)",
      "INSERT INTO t VALUES (#, #) ON CONFLICT DO NOTHING",
      "SELECT * FROM t TABLESAMPLE SYSTEM (#) REPEATABLE (#)",
    ];
    const fills = fc.array(fc.array(fc.oneof(number, string), { minLength: 4, maxLength: 4 }), {
      minLength: 2,
      maxLength: 4,
    });
    let hits = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...shapes), fills, async (shape, texts) => {
        const templated = await fresh();
        for (const values of texts) {
          let i = 0;
          const sql = shape.replace(/#/g, () => values[i++ % values.length] as string);
          expect(visible(templated.analyze(sql)), JSON.stringify(sql)).toEqual(visible(reference.analyze(sql)));
        }
        hits += templated.stats.templateHits;
      }),
      { numRuns: 1000 },
    );
    expect(hits).toBeGreaterThan(100);
  });
});
