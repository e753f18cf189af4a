import { beforeAll, describe, expect, it } from "vitest";
import type { StatementFact } from "../../policy/facts.js";
import { isStatementKind } from "../../policy/vocabulary.js";
import { PostgresSqlAnalyzer } from "./analyzer.js";

let analyzer: PostgresSqlAnalyzer;
beforeAll(async () => {
  analyzer = await PostgresSqlAnalyzer.load();
});

const kindsOf = (sql: string) => analyzer.analyze(sql).facts.statements.map((s) => s.kind);
const topKinds = (sql: string) => analyzer.analyze(sql).statements.map((s) => s.kind);

describe("statement kinds", () => {
  const cases: [sql: string, top: string][] = [
    ["SELECT 1", "select"],
    ["TABLE users", "select"],
    ["VALUES (1)", "select"],
    ["SELECT * INTO t2 FROM t", "create_table"],
    ["SELECT * FROM t FOR UPDATE", "select"],
    ["INSERT INTO t VALUES (1)", "insert"],
    ["UPDATE t SET a = 1 WHERE id = 2", "update"],
    ["DELETE FROM t WHERE id = 2", "delete"],
    ["MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)", "merge"],
    ["COPY t FROM STDIN", "copy"],
    ["DROP TABLE t", "drop"],
    ["DROP FUNCTION f()", "drop"],
    ["DROP DATABASE d", "drop"],
    ["DROP ROLE r", "drop"],
    ["DROP OWNED BY r", "drop"],
    ["TRUNCATE t", "truncate"],
    ["ALTER TABLE t ADD COLUMN c int", "alter_table"],
    ["ALTER TABLE t RENAME TO u", "alter_table"],
    ["ALTER TABLE t RENAME COLUMN a TO b", "alter_table"],
    ["ALTER TABLE t SET SCHEMA s", "alter_table"],
    ["ALTER VIEW v RENAME COLUMN a TO b", "alter"],
    ["ALTER INDEX i SET TABLESPACE x", "alter"],
    ["ALTER SEQUENCE s RESTART", "alter"],
    ["ALTER SYSTEM SET work_mem = '1GB'", "alter"],
    ["ALTER ROLE r SUPERUSER", "alter_role"],
    ["ALTER USER r SET search_path = x", "alter_role"],
    ["ALTER ROLE r RENAME TO s", "alter_role"],
    ["CREATE TABLE t (id int)", "create_table"],
    ["CREATE TABLE t AS SELECT 1", "create_table"],
    ["CREATE MATERIALIZED VIEW m AS SELECT 1", "create"],
    ["CREATE INDEX ON t (a)", "create_index"],
    ["CREATE ROLE r", "create_role"],
    ["CREATE USER r", "create_role"],
    ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", "create_function"],
    ["CREATE PROCEDURE p() LANGUAGE sql AS 'select 1'", "create_function"],
    ["CREATE VIEW v AS SELECT 1", "create"],
    ["CREATE EXTENSION x", "create"],
    ["CREATE SCHEMA s", "create"],
    ["CREATE TYPE ty AS (a int)", "create"],
    ["GRANT SELECT ON t TO r", "grant"],
    ["REVOKE SELECT ON t FROM r", "revoke"],
    ["GRANT r TO u", "grant"],
    ["REVOKE r FROM u", "revoke"],
    ["DO 'begin end'", "do"],
    ["CALL p()", "call"],
    ["SET search_path = x", "set"],
    ["SET LOCAL statement_timeout = 0", "set"],
    ["SET SESSION AUTHORIZATION postgres", "set"],
    ["SET CONSTRAINTS ALL DEFERRED", "set"],
    ["RESET ROLE", "reset"],
    ["RESET ALL", "reset"],
    ["SHOW search_path", "show"],
    ["BEGIN", "begin"],
    ["START TRANSACTION", "begin"],
    ["SAVEPOINT a", "begin"],
    ["COMMIT", "commit"],
    ["END", "commit"],
    ["RELEASE SAVEPOINT a", "commit"],
    ["PREPARE TRANSACTION 'x'", "commit"],
    ["COMMIT PREPARED 'x'", "commit"],
    ["ROLLBACK", "rollback"],
    ["ABORT", "rollback"],
    ["ROLLBACK TO SAVEPOINT a", "rollback"],
    ["ROLLBACK PREPARED 'x'", "rollback"],
    ["PREPARE p AS SELECT 1", "prepare"],
    ["EXECUTE p", "execute"],
    ["DEALLOCATE p", "deallocate"],
    ["DEALLOCATE ALL", "deallocate"],
    ["DECLARE c CURSOR FOR SELECT 1", "declare"],
    ["FETCH 10 FROM c", "fetch"],
    ["MOVE c", "fetch"],
    ["CLOSE c", "close"],
    ["EXPLAIN SELECT 1", "explain"],
    ["VACUUM t", "vacuum"],
    ["VACUUM ANALYZE t", "vacuum"],
    ["ANALYZE t", "analyze"],
    ["LOCK TABLE t", "lock"],
    ["LISTEN ch", "listen"],
    ["UNLISTEN *", "listen"],
    ["NOTIFY ch, 'x'", "notify"],
    ["DISCARD ALL", "discard"],
    ["COMMENT ON TABLE t IS 'x'", "comment"],
    ["SECURITY LABEL ON TABLE t IS 'x'", "security_label"],
    ["REFRESH MATERIALIZED VIEW m", "refresh"],
    ["CLUSTER t USING i", "cluster"],
    ["REINDEX TABLE t", "reindex"],
    ["LOAD 'x'", "load"],
    ["CHECKPOINT", "unknown"],
    ["ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r", "alter"],
    ["CREATE RULE r AS ON INSERT TO t DO NOTHING", "create"],
    ["CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", "create"],
  ];
  it.each(cases)("%s -> %s", (sql, kind) => {
    expect(analyzer.analyze(sql).error).toBeUndefined();
    expect(topKinds(sql)).toEqual([kind]);
    // whatever the analyzer reports must be a word the policy vocabulary knows
    for (const k of kindsOf(sql)) expect(isStatementKind(k), k).toBe(true);
  });
});

describe("nested statements", () => {
  it("writes in CTEs of any statement become facts of their own", () => {
    const a = analyzer.analyze(
      "WITH u AS (UPDATE accounts SET x = 1 WHERE id = 7 RETURNING id), i AS (INSERT INTO log SELECT * FROM u) " +
        "DELETE FROM sessions WHERE id IN (SELECT id FROM u)",
    );
    expect(a.facts.statements).toEqual([
      { kind: "delete", tables: ["sessions"], hasWhere: true },
      { kind: "update", tables: ["accounts"], hasWhere: true },
      { kind: "insert", tables: ["log"] },
    ]);
    expect(a.statements).toEqual([expect.objectContaining({ kind: "delete", hasWhere: true })]);
    expect(a.statements[0]?.tables).toEqual(["sessions", "accounts", "log"]);
  });

  it("reads inside writes are select facts, so a read rule still sees them", () => {
    expect(analyzer.analyze("INSERT INTO mine SELECT * FROM secrets").facts.statements).toEqual([
      { kind: "insert", tables: ["mine"] },
      { kind: "select", tables: ["secrets"] },
    ]);
    expect(analyzer.analyze("UPDATE t SET a = s.x FROM s WHERE t.id = s.id").facts.statements).toEqual([
      { kind: "update", tables: ["t"], hasWhere: true },
      { kind: "select", tables: ["s"] },
    ]);
    expect(analyzer.analyze("DELETE FROM t USING q WHERE t.id = q.id").facts.statements).toEqual([
      { kind: "delete", tables: ["t"], hasWhere: true },
      { kind: "select", tables: ["q"] },
    ]);
  });

  it("nested selects fold into one select fact with every table read", () => {
    const a = analyzer.analyze(
      "SELECT * FROM a JOIN s.b ON true WHERE x IN (SELECT y FROM c) UNION SELECT * FROM (SELECT 1 FROM d) z",
    );
    expect(a.facts.statements).toEqual([{ kind: "select", tables: ["a", "s.b", "c", "d"] }]);
  });

  it("a SELECT that contains a data-modifying CTE deep inside a set operation still shows the write", () => {
    const sql = "SELECT 1 UNION ALL (WITH d AS (DELETE FROM users RETURNING 1) SELECT * FROM d)";
    expect(analyzer.analyze(sql).facts.statements).toEqual([
      { kind: "select", tables: [] },
      { kind: "delete", tables: ["users"], hasWhere: false },
    ]);
  });

  it("upserts are updates, MERGE actions are their own kinds", () => {
    expect(kindsOf("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1")).toEqual(["insert", "update"]);
    expect(kindsOf("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING")).toEqual(["insert"]);
    expect(
      analyzer.analyze(
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.gone THEN DELETE " +
          "WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
      ).facts.statements,
    ).toEqual([
      { kind: "merge", tables: ["t"] },
      { kind: "delete", tables: ["t"], hasWhere: false },
      { kind: "update", tables: ["t"], hasWhere: false },
      { kind: "insert", tables: ["t"] },
      { kind: "select", tables: ["s"] },
    ]);
  });

  it("bodies that run later count now: PREPARE, EXPLAIN (with or without ANALYZE), DECLARE, views, SQL functions", () => {
    expect(kindsOf("PREPARE p (int) AS UPDATE t SET a = $1")).toEqual(["prepare", "update"]);
    expect(kindsOf("EXPLAIN DELETE FROM t")).toEqual(["explain", "delete"]);
    expect(kindsOf("EXPLAIN (ANALYZE, FORMAT JSON) INSERT INTO t VALUES (1)")).toEqual(["explain", "insert"]);
    expect(analyzer.analyze("DECLARE c CURSOR FOR SELECT * FROM t").facts.statements).toEqual([
      { kind: "declare", tables: [] },
      { kind: "select", tables: ["t"] },
    ]);
    expect(analyzer.analyze("CREATE VIEW v AS SELECT * FROM secrets").facts.statements).toEqual([
      { kind: "create", tables: ["v"] },
      { kind: "select", tables: ["secrets"] },
    ]);
    expect(kindsOf("CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM users; END")).toEqual([
      "create_function",
      "delete",
    ]);
    expect(kindsOf("CREATE SCHEMA s CREATE TABLE t (id int) CREATE VIEW v AS SELECT 1")).toEqual([
      "create",
      "create_table",
      "create",
      "select",
    ]);
    expect(kindsOf("ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM public")).toEqual(["alter", "revoke"]);
  });

  it("CREATE TABLE AS and SELECT INTO separate the new table from what they read", () => {
    for (const sql of ["CREATE TABLE copy AS SELECT * FROM secrets", "SELECT * INTO copy FROM secrets"]) {
      expect(analyzer.analyze(sql).facts.statements).toEqual([
        { kind: "create_table", tables: ["copy"] },
        { kind: "select", tables: ["secrets"] },
      ]);
    }
  });

  it("COPY: direction, program and server files", () => {
    const from = analyzer.analyze("COPY public.t (a) FROM STDIN WITH (FORMAT csv)");
    expect(from.facts.statements).toEqual([
      { kind: "copy", tables: ["public.t"] },
      { kind: "insert", tables: ["public.t"] },
    ]);
    expect(from.statements[0]?.copy).toEqual({ direction: "from", via: "stdio", format: "csv" });
    const file = analyzer.analyze("COPY t FROM '/etc/passwd'");
    expect(file.facts.statements.map((s) => s.kind)).toEqual(["copy", "insert", "copy_file"]);
    expect(file.statements[0]?.copy).toEqual({ direction: "from", via: "file", format: "text" });
    const query = analyzer.analyze("COPY (SELECT * FROM s WHERE a > 1) TO PROGRAM 'gzip > /tmp/x'");
    expect(query.facts.statements).toEqual([
      { kind: "copy", tables: [] },
      { kind: "select", tables: ["s"] },
      { kind: "copy_program", tables: [] },
    ]);
    expect(query.statements[0]?.copy).toEqual({ direction: "to", via: "program", format: "text" });
    expect(analyzer.analyze("COPY t TO STDOUT").statements[0]?.copy).toEqual({
      direction: "to",
      via: "stdio",
      format: "text",
    });
  });

  it("COPY format: as the server reads the options, whatever the spelling", () => {
    const format = (sql: string) => analyzer.analyze(sql).statements.map((s) => s.copy?.format);
    const cases: [sql: string, expected: string][] = [
      ["COPY t TO STDOUT", "text"],
      ["COPY t TO STDOUT (FORMAT text)", "text"],
      ["COPY t TO STDOUT WITH (FORMAT csv, HEADER)", "csv"],
      ["COPY t TO STDOUT CSV HEADER", "csv"],
      ["COPY t TO STDOUT WITH CSV", "csv"],
      ["COPY t TO STDOUT WITH (FORMAT binary)", "binary"],
      ["COPY t TO STDOUT (FORMAT 'binary')", "binary"],
      ['COPY t TO STDOUT (FORMAT "binary")', "binary"],
      ["COPY t TO STDOUT (FORMAT BINARY)", "binary"],
      ["COPY BINARY t TO STDOUT", "binary"],
      ["COPY t TO STDOUT WITH BINARY", "binary"],
      ["copy t from stdin binary", "binary"],
      // the parser resolves every string spelling, as the server will
      ["COPY t TO STDOUT (FORMAT E'\\x62inary')", "binary"],
      ["COPY t TO STDOUT (FORMAT U&'\\0062inary')", "binary"],
      ["COPY t TO STDOUT (FORMAT $$binary$$)", "binary"],
      ["COPY t TO STDOUT (FORMAT /* c */ binary)", "binary"],
      // a column, alias, table or literal named binary is not the format
      ["COPY (SELECT note AS binary FROM t) TO STDOUT", "text"],
      ['COPY (SELECT "binary", \'binary\' FROM "binary") TO STDOUT WITH (FORMAT csv)', "csv"],
      ['COPY "binary" TO STDOUT', "text"],
      // what the server would reject is not text: it cannot be told, so the adapter refuses it
      ["COPY t TO STDOUT (FORMAT 'BINARY')", "unknown"],
      ["COPY t TO STDOUT (FORMAT 'text ')", "unknown"],
      ["COPY t TO STDOUT (FORMAT 1)", "unknown"],
      ["COPY t TO STDOUT (FORMAT)", "unknown"],
      ["COPY t TO STDOUT (FORMAT text, FORMAT binary)", "unknown"],
      ["COPY t TO STDOUT (FORMAT csv, FORMAT csv)", "unknown"],
      ['COPY t TO STDOUT ("FORMAT" binary)', "unknown"],
    ];
    for (const [sql, expected] of cases) expect(format(sql), sql).toEqual([expected]);
    expect(format("COPY a TO STDOUT; COPY b TO STDOUT BINARY")).toEqual(["text", "binary"]);
    expect(format("SELECT 1")).toEqual([undefined]);
  });
});

describe("prepared statements", () => {
  const top = (sql: string) => analyzer.analyze(sql).statements;

  it("PREPARE gives the name as the server resolves it and the facts of the body", () => {
    const [p] = top("PREPARE del (int) AS DELETE FROM users WHERE id = $1 RETURNING pg_sleep(0)");
    expect(p?.prepare).toEqual({
      name: "del",
      facts: [{ kind: "delete", tables: ["users"], hasWhere: true, functions: ["pg_sleep"] }],
    });
    // the body is every fact after the statement's own, also with CTEs and reads
    expect(top("PREPARE Q AS WITH x AS (DELETE FROM a RETURNING *) SELECT * FROM x, b")[0]?.prepare).toEqual({
      name: "q",
      facts: [
        { kind: "select", tables: ["b"] },
        { kind: "delete", tables: ["a"], hasWhere: false },
      ],
    });
    expect(top('PREPARE "Q" AS SELECT 1')[0]?.prepare?.name).toBe("Q");
    expect(top('PREPARE U&"\\0071" AS SELECT 1')[0]?.prepare?.name).toBe("q");
    // identifiers are cut to 63 bytes, at a character boundary, as the server's parser cuts them
    expect(top(`PREPARE ${"a".repeat(70)} AS SELECT 1`)[0]?.prepare?.name).toBe("a".repeat(63));
    expect(top(`PREPARE "${"é".repeat(40)}" AS SELECT 1`)[0]?.prepare?.name).toBe("é".repeat(31));
    expect(top("SELECT 1")[0]?.prepare).toBeUndefined();
  });

  it("EXECUTE names, also under EXPLAIN and CREATE TABLE AS; its arguments are the execute fact's", () => {
    expect(top("EXECUTE p(1)")[0]).toMatchObject({ kind: "execute", executes: ["p"] });
    expect(top('execute "P"')[0]?.executes).toEqual(["P"]);
    expect(top("EXPLAIN ANALYZE EXECUTE p(1)")[0]).toMatchObject({ kind: "explain", executes: ["p"] });
    expect(top("CREATE TABLE t AS EXECUTE q")[0]).toMatchObject({ kind: "create_table", executes: ["q"] });
    expect(top("EXECUTE a; SELECT 1; EXECUTE b").map((s) => s.executes)).toEqual([["a"], undefined, ["b"]]);
    expect(analyzer.analyze("EXECUTE p((SELECT pg_read_file('x') FROM t))").facts.statements).toEqual([
      { kind: "execute", tables: [] },
      { kind: "select", tables: ["t"], functions: ["pg_read_file"] },
    ]);
    expect(top("SELECT 'EXECUTE p'")[0]?.executes).toBeUndefined();
  });

  it("DEALLOCATE one or all, DISCARD ALL; other DISCARDs keep prepared statements", () => {
    expect(top("DEALLOCATE p")[0]?.deallocate).toEqual({ name: "p" });
    expect(top('DEALLOCATE PREPARE "P"')[0]?.deallocate).toEqual({ name: "P" });
    expect(top("DEALLOCATE ALL")[0]?.deallocate).toEqual({ all: true });
    expect(top("DEALLOCATE PREPARE ALL")[0]?.deallocate).toEqual({ all: true });
    expect(top("DISCARD ALL")[0]).toMatchObject({ kind: "discard", deallocate: { all: true } });
    for (const sql of ["DISCARD PLANS", "DISCARD TEMP", "DISCARD SEQUENCES"]) {
      expect(top(sql)[0]?.deallocate, sql).toBeUndefined();
    }
  });

  it("texts that differ only in the literals of EXECUTE keep their own names (never served from a template)", async () => {
    const a = await PostgresSqlAnalyzer.load();
    const texts = ["EXECUTE p(1)", "EXECUTE q(1)", "EXECUTE p(2)", "EXECUTE q(3)", "EXPLAIN EXECUTE r('x')"];
    for (const sql of texts)
      expect(a.analyze(sql).statements[0]?.executes, sql).toEqual([sql.match(/EXECUTE (\w)/)?.[1]]);
    expect(a.analyze("PREPARE p AS DELETE FROM t WHERE id = 1").statements[0]?.prepare?.name).toBe("p");
    expect(a.analyze("PREPARE q AS DELETE FROM t WHERE id = 2").statements[0]?.prepare?.name).toBe("q");
    expect(a.stats.templateHits).toBe(0);
    expect(a.stats.templates).toBe(0);
  });
});

describe("tables", () => {
  const tables = (sql: string) => analyzer.analyze(sql).statements.flatMap((s) => s.tables);

  it("keeps schema qualification, folds unquoted names, keeps quoted names exact", () => {
    expect(tables('SELECT * FROM Public.Users, "Public"."Users", "MiXed", app.s.t')).toEqual([
      "public.users",
      "Public.Users",
      "MiXed",
      "app.s.t",
    ]);
    expect(tables('DROP TABLE U&"\\0075sers", "x""y"')).toEqual(["users", 'x"y']);
  });

  it("CTE names are not tables, but a CTE body's own references are", () => {
    expect(tables("WITH users AS (SELECT * FROM users) SELECT * FROM users, public.users")).toEqual([
      "users",
      "public.users",
    ]);
    expect(tables("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b")).toEqual([]);
    // without RECURSIVE a body cannot see a later CTE: that name is a table
    expect(tables("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a")).toEqual(["b"]);
    expect(tables("WITH RECURSIVE r AS (SELECT 1 UNION SELECT * FROM r) SELECT * FROM r")).toEqual([]);
  });

  it("targets of DDL, TRUNCATE, LOCK, GRANT, VACUUM, DROP of relations", () => {
    expect(tables("TRUNCATE a, s.b")).toEqual(["a", "s.b"]);
    expect(tables("DROP TABLE a, s.b; DROP VIEW v; DROP INDEX i; DROP SCHEMA sch; DROP FUNCTION f()")).toEqual([
      "a",
      "s.b",
      "v",
      "i",
    ]);
    expect(tables("ALTER TABLE t ADD COLUMN c int REFERENCES o (id)")).toEqual(["t", "o"]);
    expect(tables("LOCK a, b IN EXCLUSIVE MODE")).toEqual(["a", "b"]);
    expect(tables("GRANT SELECT ON a, s.b TO r")).toEqual(["a", "s.b"]);
    expect(tables("VACUUM (FULL) a, b")).toEqual(["a", "b"]);
    expect(tables("CREATE INDEX i ON s.t (a)")).toEqual(["s.t"]);
    expect(tables("ALTER TABLE t RENAME TO u")).toEqual(["t"]);
  });
});

describe("function calls", () => {
  const facts = (sql: string) => analyzer.analyze(sql).facts.statements;
  const calls = (sql: string) => analyzer.analyze(sql).statements.map((s) => s.functions);

  it("anywhere in a select: list, FROM, WHERE, CTEs, subqueries, set operations, arguments, FILTER, OVER", () => {
    const cases: [sql: string, functions: string[]][] = [
      ["SELECT pg_terminate_backend(123)", ["pg_terminate_backend"]],
      ["SELECT * FROM pg_read_file('/etc/passwd')", ["pg_read_file"]],
      ["SELECT * FROM ROWS FROM (pg_ls_dir('.'), generate_series(1, 2)) AS r(a, b)", ["pg_ls_dir", "generate_series"]],
      ["SELECT * FROM t, LATERAL lo_export(t.oid, '/tmp/x') AS e", ["lo_export"]],
      ["SELECT a FROM t WHERE pg_sleep(1) IS NULL", ["pg_sleep"]],
      ["SELECT a FROM t GROUP BY a HAVING max(b) > 1", ["max"]],
      ["WITH x AS (SELECT set_config('role', 'postgres', false)) SELECT * FROM x", ["set_config"]],
      ["SELECT (SELECT pg_terminate_backend(1))", ["pg_terminate_backend"]],
      ["SELECT a FROM t WHERE a IN (SELECT f(b) FROM s)", ["f"]],
      ["SELECT * FROM (SELECT g() AS x) q", ["g"]],
      ["SELECT 1 UNION SELECT lo_import('/etc/passwd')", ["lo_import"]],
      ["VALUES (lo_import('/etc/passwd'))", ["lo_import"]],
      ["SELECT upper(pg_read_file('/x'))", ["upper", "pg_read_file"]],
      ["SELECT count(*) FILTER (WHERE g(y)) OVER (ORDER BY h(x)) FROM t", ["count", "g", "h"]],
      ["SELECT string_agg(a, ',' ORDER BY k(a)) FROM t", ["string_agg", "k"]],
      ["SELECT f(1), f(2), F(3)", ["f"]],
    ];
    for (const [sql, functions] of cases) {
      expect(facts(sql), sql).toEqual([{ kind: "select", tables: expect.any(Array), functions }]);
      expect(calls(sql), sql).toEqual([functions]);
    }
  });

  it("names as the parser resolved them: folded unless quoted, schema kept, U& decoded", () => {
    expect(
      calls(
        `SELECT pg_catalog.PG_TERMINATE_BACKEND(1), "Quoted"(1), "pg_catalog"."set_config"('a', 'b', false), ` +
          `U&"pg_\\0072ead_file"('x'), app.s.f(1), EXTRACT(year FROM now())`,
      ),
    ).toEqual([
      [
        "pg_catalog.pg_terminate_backend",
        "Quoted",
        "pg_catalog.set_config",
        "pg_read_file",
        "app.s.f",
        // SQL syntax the grammar turns into a call names the function it runs
        "pg_catalog.extract",
        "now",
      ],
    ]);
  });

  it("a write's calls are the write's, its read part included; upserts and MERGE actions share them", () => {
    expect(facts("UPDATE t SET a = f(b) WHERE g(c) RETURNING h(a)")).toEqual([
      { kind: "update", tables: ["t"], hasWhere: true, functions: ["f", "g", "h"] },
    ]);
    expect(facts("INSERT INTO t VALUES (DEFAULT, lo_import('/etc/passwd'))")).toEqual([
      { kind: "insert", tables: ["t"], functions: ["lo_import"] },
    ]);
    expect(facts("INSERT INTO t SELECT f(a) FROM s")).toEqual([
      { kind: "insert", tables: ["t"], functions: ["f"] },
      { kind: "select", tables: ["s"] },
    ]);
    expect(facts("DELETE FROM t WHERE id IN (SELECT id FROM s WHERE pg_sleep(1) IS NULL)")).toEqual([
      { kind: "delete", tables: ["t"], hasWhere: true, functions: ["pg_sleep"] },
      { kind: "select", tables: ["s"] },
    ]);
    expect(facts("INSERT INTO t VALUES (f()) ON CONFLICT (id) DO UPDATE SET a = g()")).toEqual([
      { kind: "insert", tables: ["t"], functions: ["f", "g"] },
      { kind: "update", tables: ["t"], hasWhere: true, functions: ["f", "g"] },
    ]);
    expect(facts("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = f()")).toEqual([
      { kind: "merge", tables: ["t"], functions: ["f"] },
      { kind: "update", tables: ["t"], hasWhere: false, functions: ["f"] },
      { kind: "select", tables: ["s"] },
    ]);
  });

  it("nested statements keep their own calls: data-modifying CTEs, EXPLAIN, PREPARE, rules, views, SQL bodies", () => {
    expect(facts("WITH d AS (DELETE FROM u WHERE f(x) RETURNING g(x)) SELECT h() FROM d")).toEqual([
      { kind: "select", tables: [], functions: ["h"] },
      { kind: "delete", tables: ["u"], hasWhere: true, functions: ["f", "g"] },
    ]);
    expect(calls("WITH d AS (DELETE FROM u WHERE f(x) RETURNING g(x)) SELECT h() FROM d")).toEqual([["h", "f", "g"]]);
    // the body runs later, or each time the object is used: its calls are a select of its own
    const bodies: [sql: string, outer: StatementFact, functions: string[]][] = [
      ["EXPLAIN ANALYZE SELECT pg_sleep(10)", { kind: "explain", tables: [] }, ["pg_sleep"]],
      ["PREPARE p AS SELECT lo_export(1, '/tmp/x')", { kind: "prepare", tables: [] }, ["lo_export"]],
      [
        "CREATE RULE r AS ON INSERT TO t DO INSTEAD SELECT dblink_exec('c', 'DROP TABLE x')",
        { kind: "create", tables: ["t"] },
        ["dblink_exec"],
      ],
      ["CREATE VIEW v AS SELECT pg_read_file('/x')", { kind: "create", tables: ["v"] }, ["pg_read_file"]],
      [
        "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT pg_sleep(1); END",
        { kind: "create_function", tables: [] },
        ["pg_sleep"],
      ],
      ["SELECT f() INTO t2", { kind: "create_table", tables: ["t2"] }, ["f"]],
    ];
    for (const [sql, outer, functions] of bodies) {
      expect(facts(sql), sql).toEqual([outer, { kind: "select", tables: [], functions }]);
    }
  });

  it("CALL's procedure, COPY's query, DEFAULTs, index expressions", () => {
    expect(facts("CALL my_proc()")).toEqual([{ kind: "call", tables: [], functions: ["my_proc"] }]);
    expect(facts("CALL app.my_proc(now())")).toEqual([{ kind: "call", tables: [], functions: ["app.my_proc", "now"] }]);
    expect(facts("COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT")).toEqual([
      { kind: "copy", tables: [], functions: ["pg_read_file"] },
    ]);
    expect(facts("COPY (SELECT f() FROM s) TO PROGRAM 'x'")).toEqual([
      { kind: "copy", tables: [], functions: ["f"] },
      { kind: "select", tables: ["s"] },
      { kind: "copy_program", tables: [], functions: ["f"] },
    ]);
    expect(facts("CREATE TABLE t (a int DEFAULT nextval('s'), b text CHECK (length(b) < 9))")).toEqual([
      { kind: "create_table", tables: ["t"], functions: ["nextval", "length"] },
    ]);
    expect(facts("CREATE INDEX ON t (lower(a))")).toEqual([
      { kind: "create_index", tables: ["t"], functions: ["lower"] },
    ]);
  });

  it("what is not a call here: strings, bodies, names of objects, operators, casts, attribute notation", () => {
    const none = [
      "SELECT 1",
      "SELECT $$pg_sleep(1)$$, 'pg_read_file(''/x'')'",
      "DO $$ BEGIN PERFORM pg_sleep(1); END $$",
      "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'SELECT pg_sleep(1)'",
      "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit()",
      "DROP FUNCTION pg_sleep(float8)",
      "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO r",
      "SELECT 1 + 2, '1'::int, a::regclass FROM t",
      "SELECT t.f FROM t",
      "SELECT CURRENT_TIMESTAMP, CURRENT_USER",
    ];
    for (const sql of none) {
      expect(analyzer.analyze(sql).error, sql).toBeUndefined();
      for (const f of facts(sql)) expect(f.functions, sql).toBeUndefined();
      expect(
        calls(sql).every((c) => c === undefined),
        sql,
      ).toBe(true);
    }
  });
});

describe("has-where", () => {
  const where = (sql: string) => analyzer.analyze(sql).facts.statements[0]?.hasWhere;
  it.each([
    ["DELETE FROM t", false],
    ["DELETE FROM t WHERE id = 1", true],
    ["DELETE FROM t WHERE id = $1", true],
    ["DELETE FROM t WHERE CURRENT OF c", true],
    ["DELETE FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.id = t.id)", true],
    ["UPDATE t SET a = 1", false],
    ["UPDATE t SET a = 1 WHERE a IS NULL", true],
    // mentions no column: it cannot tell rows apart, so it is "all rows" (or none)
    ["DELETE FROM t WHERE true", false],
    ["DELETE FROM t WHERE 1 = 1", false],
    ["UPDATE t SET a = 1 WHERE 'a' <> 'b' OR $1", false],
    ["DELETE FROM t WHERE random() < 2", false],
  ] as const)("%s -> %s", (sql, expected) => {
    expect(where(sql)).toBe(expected);
  });

  it("is left out for statements other than update and delete", () => {
    expect(analyzer.analyze("SELECT 1 WHERE true").facts.statements[0]).toEqual({ kind: "select", tables: [] });
  });
});

describe("text and shape", () => {
  it("empty text and comments only are zero statements, not an error", () => {
    for (const sql of ["", "   \n\t", "-- nothing", "/* a */ ; ;", ";"]) {
      const a = analyzer.analyze(sql);
      expect(a.statements).toEqual([]);
      expect(a.facts.statements).toEqual([]);
      expect(a.error).toBeUndefined();
      expect(a.facts.unparseable).toBeUndefined();
      expect(a.fingerprint).toBeUndefined();
    }
  });

  it("slices each statement's exact text, also after multi-byte characters", () => {
    const a = analyzer.analyze("SELECT 'é€😀' AS x;  /* c */ DELETE FROM \"Ü\" WHERE a = 'ß' ;\nSELECT 2");
    expect(a.statements.map((s) => s.text)).toEqual([
      "SELECT 'é€😀' AS x",
      "DELETE FROM \"Ü\" WHERE a = 'ß' ",
      "SELECT 2",
    ]);
    expect(a.statements[1]?.tables).toEqual(["Ü"]);
  });

  it("unparseable text: statements empty, reason in error and facts.unparseable", () => {
    const a = analyzer.analyze("SELECT 1; DROP TABLE");
    expect(a.statements).toEqual([]);
    expect(a.facts.statements).toEqual([]);
    expect(a.error).toMatch(/syntax error/);
    expect(a.facts.unparseable).toEqual({ reason: a.error });
  });

  it("a NUL would hide the rest of the text from the parser", () => {
    expect(analyzer.analyze("SELECT 1\0; DROP TABLE t").facts.unparseable?.reason).toMatch(/NUL/);
  });

  it("settings that change how text is read are unanalyzable; harmless values are not", () => {
    const bad = [
      "SET standard_conforming_strings = off",
      "SET standard_conforming_strings TO false",
      "SET LOCAL standard_conforming_strings = 0",
      "SELECT 1; SET client_encoding = 'SJIS'",
      "SET NAMES 'latin1'",
    ];
    for (const sql of bad) expect(analyzer.analyze(sql).facts.unparseable, sql).toBeDefined();
    const good = [
      "SET standard_conforming_strings = on",
      "SET client_encoding = 'UTF8'",
      "SET NAMES 'utf-8'",
      "RESET client_encoding",
    ];
    for (const sql of good) expect(analyzer.analyze(sql).facts.unparseable, sql).toBeUndefined();
    // the facts are kept, so guardrails still run under on_unparseable allow/approve
    expect(analyzer.analyze("SET client_encoding = 'SJIS'; DROP TABLE t").facts.statements.map((s) => s.kind)).toEqual([
      "set",
      "drop",
    ]);
  });

  it("absurdly nested queries are unparseable and leave the analyzer working", () => {
    // around 3000 levels the parse tree's JSON overflows the JS stack, around 3500 the parser's own stack
    for (const depth of [2500, 3000, 3500, 4000]) {
      const deep = "SELECT " + "(SELECT ".repeat(depth) + "1" + ")".repeat(depth);
      const a = analyzer.analyze(deep);
      if (depth >= 3500) expect(a.facts.unparseable).toBeDefined();
      else if (!a.facts.unparseable) expect(a.facts.statements).toEqual([{ kind: "select", tables: [] }]);
      expect(topKinds("DROP TABLE t")).toEqual(["drop"]);
    }
  });

  it("deep but legal trees are walked without recursion limits", () => {
    const sql = "DELETE FROM t WHERE " + "NOT ".repeat(4000) + "a";
    expect(analyzer.analyze(sql).facts.statements).toEqual([{ kind: "delete", tables: ["t"], hasWhere: true }]);
  });
});

describe("fingerprint and cache", () => {
  it("fingerprint ignores literals but not structure", () => {
    const one = analyzer.analyze("select 1").fingerprint;
    expect(one).toMatch(/^[0-9a-f]{16}$/);
    expect(analyzer.analyze("SELECT 2").fingerprint).toBe(one);
    expect(analyzer.analyze("DELETE FROM t WHERE id = 1").fingerprint).toBe(
      analyzer.analyze("delete from t where id = 99").fingerprint,
    );
    expect(analyzer.analyze("DELETE FROM t WHERE id > 1").fingerprint).not.toBe(
      analyzer.analyze("DELETE FROM t WHERE id = 1").fingerprint,
    );
    expect(analyzer.analyze("select from").fingerprint).toBeUndefined();
  });

  it("a cache hit returns the identical result object, fast", async () => {
    const fresh = await PostgresSqlAnalyzer.load({ cacheSize: 10 });
    const sql = "SELECT a, b FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 42";
    const first = fresh.analyze(sql);
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) expect(fresh.analyze(sql)).toBe(first);
    // 10k hits including the expect() calls; a real parse costs tens of microseconds each
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("evicts least recently used entries beyond cacheSize", async () => {
    const small = await PostgresSqlAnalyzer.load({ cacheSize: 2 });
    const a = small.analyze("SELECT 1");
    const b = small.analyze("SELECT 2");
    expect(small.analyze("SELECT 1")).toBe(a); // now SELECT 2 is the oldest
    small.analyze("SELECT 3");
    expect(small.analyze("SELECT 1")).toBe(a);
    expect(small.analyze("SELECT 2")).not.toBe(b);
    expect(small.analyze("SELECT 2")).toEqual(b);
  });

  it("does not cache texts too large for its budget", async () => {
    const small = await PostgresSqlAnalyzer.load({ cacheChars: 1600 });
    const big = "SELECT " + "1,".repeat(100) + "1";
    expect(small.analyze(big)).not.toBe(small.analyze(big));
    expect(small.analyze("SELECT 1")).toBe(small.analyze("SELECT 1"));
  });

  it("results are frozen: one session cannot change what another one is told", () => {
    const a = analyzer.analyze("DROP TABLE frozen_t");
    expect(() => a.facts.statements.pop()).toThrow(TypeError);
    expect(() => {
      (a.facts.statements[0] as { kind: string }).kind = "select";
    }).toThrow(TypeError);
    expect(analyzer.analyze("DROP TABLE frozen_t").facts.statements).toEqual([{ kind: "drop", tables: ["frozen_t"] }]);
  });
});
