import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { isStatementKind } from "../../policy/vocabulary.js";
import { PostgresSqlAnalyzer, type SqlAnalysis } from "./analyzer.js";

/**
 * Properties over generated input. Whatever arrives on the wire, analyze() must answer (facts or unparseable),
 * never throw, stay within a time bound, and only speak the policy vocabulary.
 */

let analyzer: PostgresSqlAnalyzer;
beforeAll(async () => {
  // no caches (exact text or literal templates): every run must really parse
  analyzer = await PostgresSqlAnalyzer.load({ cacheSize: 0, templateCacheSize: 0 });
});

const CORPUS = [
  "SELECT a, b FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 1",
  "DELETE FROM users WHERE id = 7",
  "UPDATE accounts SET balance = balance - 10 WHERE id = 3 RETURNING *",
  "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y') ON CONFLICT (a) DO UPDATE SET b = excluded.b",
  "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d",
  "DROP TABLE IF EXISTS public.users CASCADE",
  "TRUNCATE ONLY users RESTART IDENTITY",
  "PREPARE p (int) AS DELETE FROM users WHERE id = $1; EXECUTE p(1)",
  "EXPLAIN ANALYZE DELETE FROM users",
  "COPY users TO PROGRAM 'cat > /tmp/x'",
  "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
  "CREATE RULE r AS ON SELECT TO t DO INSTEAD DELETE FROM users",
  "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$",
  "SELECT $$DROP TABLE users$$, E'\\'', 'it''s', U&'\\0041'",
  "GRANT ALL ON users TO public; REVOKE ALL ON users FROM public",
  "ALTER TABLE users ADD COLUMN c int DEFAULT 0 NOT NULL",
  "BEGIN; SAVEPOINT a; ROLLBACK TO a; COMMIT",
  "SELECT * FROM users FOR UPDATE SKIP LOCKED",
];

function check(sql: string): SqlAnalysis {
  const a = analyzer.analyze(sql);
  if (a.facts.unparseable === undefined) {
    expect(a.error).toBeUndefined();
  } else {
    expect(typeof a.facts.unparseable.reason).toBe("string");
    expect(a.error).toBe(a.facts.unparseable.reason);
  }
  // a text with statements has facts for each of them (a top-level statement is always a fact)
  expect(a.facts.statements.length).toBeGreaterThanOrEqual(a.statements.length);
  for (const s of a.facts.statements) expect(isStatementKind(s.kind), s.kind).toBe(true);
  for (const s of a.statements) expect(typeof s.text).toBe("string");
  return a;
}

const mutation = fc.oneof(
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), text: fc.string({ maxLength: 8 }) }),
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(),
    text: fc.constantFrom("'", '"', "$$", "$a$", "/*", "*/", "--", "\n", ";", "(", ")", "E'\\", 'U&"', "\\"),
  }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ op: fc.constant("dup" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 20 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(sql: string, muts: Mutation[]): string {
  let s = sql;
  for (const m of muts) {
    const at = s.length === 0 ? 0 : m.at % (s.length + 1);
    if (m.op === "insert") s = s.slice(0, at) + m.text + s.slice(at);
    else if (m.op === "delete") s = s.slice(0, at) + s.slice(at + m.len);
    else s = s.slice(0, at) + s.slice(at, at + m.len) + s.slice(at);
  }
  return s;
}

describe("analyze never throws", () => {
  it("on random strings (any unicode, control characters included)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (s) => {
        check(s);
      }),
      { numRuns: 500 },
    );
  });

  it("on random mutations of valid SQL", () => {
    fc.assert(
      fc.property(fc.constantFrom(...CORPUS), fc.array(mutation, { minLength: 1, maxLength: 6 }), (sql, muts) => {
        check(mutate(sql, muts));
      }),
      { numRuns: 1500 },
    );
  });

  it("on random statement sequences, and sees every statement", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...CORPUS), { minLength: 1, maxLength: 5 }), (parts) => {
        const one = parts.map((p) => analyzer.analyze(p).facts.statements).flat();
        const joined = check(parts.join(";\n"));
        expect(joined.facts.statements).toEqual(one);
      }),
      { numRuns: 200 },
    );
  });
});

describe("comments and case are never a way around the analyzer", () => {
  // no quoted text in these, so every letter is a keyword or an unquoted (case-folded) identifier
  const plain = CORPUS.filter((s) => !/['"$]/.test(s));

  it("replacing whitespace by comments changes nothing", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...plain),
        fc.array(fc.constantFrom(" ", "/**/", "/* x */", "\n-- c\n", "\t", "/* /* nested */ */"), { minLength: 1 }),
        (sql, fillers) => {
          let i = 0;
          const disguised = sql.replace(/ /g, () => fillers[i++ % fillers.length] as string);
          expect(check(disguised).facts).toEqual(analyzer.analyze(sql).facts);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("changing letter case changes nothing", () => {
    fc.assert(
      fc.property(fc.constantFrom(...plain), fc.array(fc.boolean(), { minLength: 1 }), (sql, flips) => {
        const mixed = [...sql].map((c, i) => (flips[i % flips.length] ? c.toUpperCase() : c.toLowerCase())).join("");
        expect(check(mixed).facts).toEqual(analyzer.analyze(sql).facts);
      }),
      { numRuns: 300 },
    );
  });
});

describe("bounded time", () => {
  it("bounded-length inputs are analyzed within a bounded time", () => {
    const hostile = fc.oneof(
      fc.string({ unit: "binary", maxLength: 4000 }),
      fc
        .tuple(fc.constantFrom("(", "(SELECT ", "ARRAY[", "NOT ", "-", "1+", "/*", "'", "$$", "E'\\\\"), fc.nat(1000))
        .map(([unit, n]) => "SELECT " + unit.repeat(n) + "1"),
      fc
        .tuple(fc.constantFrom(...CORPUS), fc.integer({ min: 1, max: 40 }))
        .map(([sql, n]) => Array(n).fill(sql).join("; ")),
    );
    let worst = 0;
    fc.assert(
      fc.property(hostile, (sql) => {
        fc.pre(sql.length <= 8000);
        const started = performance.now();
        check(sql);
        worst = Math.max(worst, performance.now() - started);
      }),
      { numRuns: 300 },
    );
    // an 8 KB text parses in well under 50 ms; the bound is loose so a slow CI machine does not flake
    expect(worst).toBeLessThan(500);
  });
});
