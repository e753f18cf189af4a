import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { PostgresSqlAnalyzer } from "./analyzer.js";
import { REDACTED_STATEMENT, redactPasswords } from "./redact.js";

let analyzer: PostgresSqlAnalyzer;
beforeAll(async () => {
  analyzer = await PostgresSqlAnalyzer.load();
});

const redacted = (sql: string) => analyzer.analyze(sql).redacted;

describe("role passwords are redacted", () => {
  const cases: [sql: string, expected: string][] = [
    ["CREATE ROLE r LOGIN PASSWORD 'sekrit1'", "CREATE ROLE r LOGIN PASSWORD '********'"],
    ["CREATE USER u WITH PASSWORD 'sekrit1'", "CREATE USER u WITH PASSWORD '********'"],
    ["CREATE USER u ENCRYPTED PASSWORD 'SCRAM-SHA-256$4096:abc'", "CREATE USER u ENCRYPTED PASSWORD '********'"],
    ["CREATE GROUP g PASSWORD 'sekrit1'", "CREATE GROUP g PASSWORD '********'"],
    ["ALTER ROLE r PASSWORD 'sekrit1'", "ALTER ROLE r PASSWORD '********'"],
    ["alter user u with encrypted password 'sekrit1'", "alter user u with encrypted password '********'"],
    [
      "ALTER ROLE r WITH LOGIN PASSWORD 'sekrit1' VALID UNTIL '2030-01-01'",
      "ALTER ROLE r WITH LOGIN PASSWORD '********' VALID UNTIL '2030-01-01'",
    ],
    ["ALTER USER u PASSWORD 'it''s sekrit'", "ALTER USER u PASSWORD '********'"],
    ["ALTER USER u PASSWORD E'se\\'krit'", "ALTER USER u PASSWORD '********'"],
    ["ALTER USER u PASSWORD $p$sekrit$p$", "ALTER USER u PASSWORD '********'"],
    ["ALTER USER u PASSWORD $$sekrit$$", "ALTER USER u PASSWORD '********'"],
    ["ALTER USER u PASSWORD U&'sek!0072it' UESCAPE '!'", "ALTER USER u PASSWORD '********'"],
    ["ALTER USER u PASSWORD 'sek'\n'rit' LOGIN", "ALTER USER u PASSWORD '********' LOGIN"],
    ["ALTER ROLE r /* c */ PASSWORD -- c\n 'sekrit1'", "ALTER ROLE r /* c */ PASSWORD -- c\n '********'"],
    [
      "SELECT 'é'; ALTER ROLE r PASSWORD 'pässwörd😀'; SELECT 'ü'",
      "SELECT 'é'; ALTER ROLE r PASSWORD '********'; SELECT 'ü'",
    ],
    [
      "SELECT 1; CREATE ROLE a PASSWORD 'p1'; ALTER ROLE b PASSWORD 'p2' ; SELECT 2",
      "SELECT 1; CREATE ROLE a PASSWORD '********'; ALTER ROLE b PASSWORD '********' ; SELECT 2",
    ],
    // a statement that does not parse still hides what follows PASSWORD
    ["CREATE ROLE r PASSWORD 'sekrit1' BOGUS", "CREATE ROLE r PASSWORD '********' BOGUS"],
    ["SELECT 1; ALTER ROLE r PASSWORD 'sekrit1'; SELEC 2", "SELECT 1; ALTER ROLE r PASSWORD '********'; SELEC 2"],
    ["CREATE ROLE r PASSWORD 'sek' 'rit' LOGIN", "CREATE ROLE r PASSWORD '********' LOGIN"],
    ["CREATE ROLE r PASSWORD N'sekrit1' LOGIN", "CREATE ROLE r PASSWORD '********' LOGIN"],
    // ...and text that cannot even be scanned is hidden whole
    ["ALTER ROLE r PASSWORD 'sekrit1", REDACTED_STATEMENT],
    ["ALTER ROLE r PASSWORD 'sekrit1'\0", REDACTED_STATEMENT],
  ];
  it.each(cases)("%j", (sql, expected) => {
    expect(redacted(sql)).toBe(expected);
  });

  it("the error of an unparseable text does not quote the password either", () => {
    for (const sql of [
      "ALTER ROLE PASSWORD 'sekrit1'",
      "ALTER ROLE r PASSWORD 'sekrit1",
      "CREATE ROLE r PASSWORD 'a' 'sekrit1'",
    ]) {
      const a = analyzer.analyze(sql);
      expect(a.redacted, sql).toBeDefined();
      expect(a.error, sql).not.toContain("sekrit1");
      expect(a.facts.unparseable?.reason).toBe(a.error);
    }
    // errors of texts without a password keep the token
    expect(analyzer.analyze("SELECT 'a' 'b'").error).toContain(`at or near "'b'"`);
  });

  it("the rest of the analysis is unchanged", () => {
    const a = analyzer.analyze("SELECT 1; ALTER ROLE r PASSWORD 'sekrit1'");
    expect(a.facts.statements.map((s) => s.kind)).toEqual(["select", "alter_role"]);
    expect(a.statements.map((s) => s.text)).toEqual(["SELECT 1", "ALTER ROLE r PASSWORD 'sekrit1'"]);
  });

  it("nothing secret: no redacted text", () => {
    for (const sql of [
      "CREATE ROLE r LOGIN",
      "CREATE USER u",
      "ALTER ROLE r SUPERUSER",
      "ALTER ROLE r PASSWORD NULL",
      "ALTER ROLE r SET search_path = 'x'",
      "ALTER ROLE r RENAME TO s",
      "SELECT 'password'",
      "SELECT password FROM users WHERE name = 'x'",
      "SELECT password FROM users WHERE",
      "DROP ROLE r",
    ]) {
      expect(redacted(sql), sql).toBeUndefined();
    }
  });

  it("a role statement is never served from a template: each password is redacted for itself", async () => {
    const a = await PostgresSqlAnalyzer.load();
    expect(a.analyze("ALTER ROLE r PASSWORD 'first'").redacted).toBe("ALTER ROLE r PASSWORD '********'");
    expect(a.analyze("ALTER ROLE r PASSWORD 'second one'").redacted).toBe("ALTER ROLE r PASSWORD '********'");
    expect(a.stats.templateHits).toBe(0);
  });

  it("a literal that cannot be located hides its whole statement", () => {
    const sql = "SELECT 1; ALTER ROLE r PASSWORD 'sekrit1'; SELECT 2";
    // a location that is not the PASSWORD keyword (the tree would never say so; the fallback must still hold)
    const site = { option: 16, stmtStart: 10, stmtEnd: 41 };
    expect(redactPasswords(sql, [site])).toBe(`SELECT 1; ${REDACTED_STATEMENT}; SELECT 2`);
    expect(redactPasswords(sql, [{ ...site, stmtEnd: undefined }])).toBe(`SELECT 1; ${REDACTED_STATEMENT}`);
  });

  it("a password never appears in the redacted text, which still parses to the same facts", () => {
    const password = fc
      .string({ unit: fc.constantFrom(..."abcXYZ019 '\"-;$\\é😀\n"), minLength: 1, maxLength: 20 })
      .map((s) => `Pw~${s}~`);
    const form = fc.constantFrom(
      (p: string) => `CREATE ROLE r LOGIN PASSWORD '${p.replace(/'/g, "''")}'`,
      (p: string) => `ALTER USER u WITH ENCRYPTED PASSWORD '${p.replace(/'/g, "''")}'`,
      (p: string) => `SELECT 1; ALTER ROLE "R" PASSWORD $q$${p.replace(/\$/g, "")}$q$ VALID UNTIL 'infinity'`,
      (p: string) => `CREATE USER u PASSWORD E'${p.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'; SELECT 2`,
    );
    fc.assert(
      fc.property(password, form, (p, make) => {
        const sql = make(p);
        const a = analyzer.analyze(sql);
        expect(a.error, sql).toBeUndefined();
        const text = a.redacted ?? "";
        expect(text).toContain("'********'");
        expect(text).not.toContain("Pw~");
        expect(analyzer.analyze(text).facts).toEqual(a.facts);
      }),
      { numRuns: 300 },
    );
  });
});
