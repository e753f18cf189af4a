import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { PostgresSqlAnalyzer } from "./analyzer.js";
import { REDACTED_SECRET_STATEMENT, REDACTED_STATEMENT, redactSecrets } from "./redact.js";

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
    ["ALTER ROLE r PASSWORD 'sekrit1", REDACTED_SECRET_STATEMENT],
    ["ALTER ROLE r PASSWORD 'sekrit1'\0", REDACTED_SECRET_STATEMENT],
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
    const site = { spot: "role", at: 16, stmtStart: 10, stmtEnd: 41 } as const;
    expect(redactSecrets(sql, [site])).toBe(`SELECT 1; ${REDACTED_STATEMENT}; SELECT 2`);
    expect(redactSecrets(sql, [{ ...site, stmtEnd: undefined }])).toBe(`SELECT 1; ${REDACTED_STATEMENT}`);
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

describe("passwords of user mappings, servers and wrappers are redacted", () => {
  const cases: [sql: string, expected: string][] = [
    [
      "CREATE USER MAPPING FOR bob SERVER foo OPTIONS (user 'bob', password 'sekrit1')",
      "CREATE USER MAPPING FOR bob SERVER foo OPTIONS (user 'bob', password '********')",
    ],
    [
      "create user mapping if not exists for current_user server foo options (password E'sek\\'rit1', user 'u')",
      "create user mapping if not exists for current_user server foo options (password '********', user 'u')",
    ],
    [
      "ALTER USER MAPPING FOR bob SERVER foo OPTIONS (SET password 'sekrit1', ADD \"sslpassword\" $$sekrit2$$)",
      "ALTER USER MAPPING FOR bob SERVER foo OPTIONS (SET password '********', ADD \"sslpassword\" '********')",
    ],
    [
      "ALTER USER MAPPING FOR public SERVER foo OPTIONS (ADD Password 'sek'\n'rit1', DROP user)",
      "ALTER USER MAPPING FOR public SERVER foo OPTIONS (ADD Password '********', DROP user)",
    ],
    [
      "CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS (host 'h', password 'sekrit1', port '5432')",
      "CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS (host 'h', password '********', port '5432')",
    ],
    ["ALTER SERVER s OPTIONS (ADD passwd 'sekrit1')", "ALTER SERVER s OPTIONS (ADD passwd '********')"],
    [
      "CREATE FOREIGN DATA WRAPPER w OPTIONS (keystore_password 'sekrit1')",
      "CREATE FOREIGN DATA WRAPPER w OPTIONS (keystore_password '********')",
    ],
    [
      "SELECT 'é'; ALTER SERVER s OPTIONS (SET password U&'sek!0072it😀' UESCAPE '!'); SELECT 1",
      "SELECT 'é'; ALTER SERVER s OPTIONS (SET password '********'); SELECT 1",
    ],
  ];
  it.each(cases)("%j", (sql, expected) => {
    expect(redacted(sql)).toBe(expected);
  });

  it("options that hold no password stay", () => {
    for (const sql of [
      "CREATE USER MAPPING FOR bob SERVER foo OPTIONS (user 'bob')",
      "CREATE USER MAPPING FOR bob SERVER foo",
      "ALTER USER MAPPING FOR bob SERVER foo OPTIONS (DROP password)",
      "ALTER USER MAPPING FOR bob SERVER foo OPTIONS (ADD password_required 'false')",
      "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h', dbname 'password')",
      "DROP USER MAPPING FOR bob SERVER foo",
      // other statements with OPTIONS are not searched
      "CREATE FOREIGN TABLE ft (a int) SERVER s OPTIONS (table_name 'password')",
    ]) {
      expect(redacted(sql), sql).toBeUndefined();
    }
  });
});

describe("connection strings with a password are redacted whole", () => {
  const cases: [sql: string, expected: string][] = [
    [
      "CREATE SUBSCRIPTION sub CONNECTION 'host=h dbname=d password=sekrit1' PUBLICATION p",
      "CREATE SUBSCRIPTION sub CONNECTION '********' PUBLICATION p",
    ],
    [
      "CREATE SUBSCRIPTION connection CONNECTION 'host=h password = sekrit1' PUBLICATION connection",
      "CREATE SUBSCRIPTION connection CONNECTION '********' PUBLICATION connection",
    ],
    [
      "ALTER SUBSCRIPTION sub CONNECTION 'postgresql://u:sekrit1@h:5432/d'",
      "ALTER SUBSCRIPTION sub CONNECTION '********'",
    ],
    [
      "alter subscription sub connection /* c */ E'host=h pass\\x77ord=sekrit1'",
      "alter subscription sub connection /* c */ '********'",
    ],
    [
      "ALTER SUBSCRIPTION sub CONNECTION 'postgresql://h/d?sslpassword=sekrit1'",
      "ALTER SUBSCRIPTION sub CONNECTION '********'",
    ],
    ["SELECT dblink_connect('c1', 'host=h password=sekrit1')", "SELECT dblink_connect('c1', '********')"],
    ["SELECT dblink_connect_u('password=sekrit1')", "SELECT dblink_connect_u('********')"],
    [
      "SELECT * FROM public.dblink('postgresql://u:sekrit1@h/d', 'SELECT 1') AS t(a int)",
      "SELECT * FROM public.dblink('********', 'SELECT 1') AS t(a int)",
    ],
    [
      "SELECT dblink_exec(E'host=h pass\\x77ord=sekrit1', 'DELETE FROM t')",
      "SELECT dblink_exec('********', 'DELETE FROM t')",
    ],
    [
      "SELECT dblink_connect(connstr => 'host=h password=sekrit1'::text)",
      "SELECT dblink_connect(connstr => '********'::text)",
    ],
    [
      "SELECT dblink_connect('c', 'host=h password=' || 'sekrit1')",
      "SELECT dblink_connect('c', '********' || '********')",
    ],
    [
      "WITH x AS (SELECT * FROM dblink('password=sekrit1', 'SELECT 1') AS t(a int)) SELECT * FROM x",
      "WITH x AS (SELECT * FROM dblink('********', 'SELECT 1') AS t(a int)) SELECT * FROM x",
    ],
    [
      "ALTER SUBSCRIPTION a CONNECTION 'password=sekrit1'; ALTER SUBSCRIPTION b CONNECTION 'password=sekrit2'",
      "ALTER SUBSCRIPTION a CONNECTION '********'; ALTER SUBSCRIPTION b CONNECTION '********'",
    ],
    [
      "SELECT 1; SELECT U&\"\\0064blink_connect\"('password=sekrit1'); SELECT 2",
      "SELECT 1; SELECT U&\"\\0064blink_connect\"('********'); SELECT 2",
    ],
  ];
  it.each(cases)("%j", (sql, expected) => {
    expect(redacted(sql)).toBe(expected);
  });

  it("connection strings without a password, and connections by name, stay", () => {
    for (const sql of [
      "CREATE SUBSCRIPTION sub CONNECTION 'host=h dbname=d' PUBLICATION p",
      "ALTER SUBSCRIPTION sub CONNECTION 'postgresql://u@h/d'",
      "ALTER SUBSCRIPTION sub ENABLE",
      "SELECT dblink_connect('c1', 'host=h dbname=d')",
      "SELECT * FROM dblink('c1', 'SELECT password FROM users') AS t(p text)",
      "SELECT dblink_disconnect('c1')",
      // only the arguments of dblink functions are connection strings
      "SELECT 'host=h password=sekrit1'",
      "SELECT format('postgresql://u:%s@h/d', pw) FROM t",
    ]) {
      expect(redacted(sql), sql).toBeUndefined();
    }
  });

  it("a dblink call is never served from a template: whether to redact depends on the literal", async () => {
    const a = await PostgresSqlAnalyzer.load();
    for (const sql of [
      "SELECT dblink_connect('c', 'host=h')",
      "SELECT dblink_connect('c', 'host=h')",
      "SELECT dblink_connect('c', 'host=h password=sekrit1')",
      "SELECT dblink_connect('d', 'host=h password=sekrit2')",
    ]) {
      const r = a.analyze(sql);
      expect(r.redacted ?? "", sql).not.toMatch(/sekrit/);
      if (sql.includes("password")) expect(r.redacted, sql).toBeDefined();
    }
    expect(a.stats).toMatchObject({ templateHits: 0, templates: 0 });
  });

  it("a connection string that cannot be located hides its whole statement", () => {
    const sql = "SELECT 1; ALTER SUBSCRIPTION s CONNECTION 'password=sekrit1'; SELECT 2";
    const statement = { stmtStart: 10, stmtEnd: sql.indexOf("; SELECT 2") };
    expect(redactSecrets(sql, [{ spot: "connection", ...statement }])).toBe(
      "SELECT 1; ALTER SUBSCRIPTION s CONNECTION '********'; SELECT 2",
    );
    // a literal location that is no literal
    expect(redactSecrets(sql, [{ spot: "literal", at: 12, ...statement }])).toBe(
      `SELECT 1; ${REDACTED_SECRET_STATEMENT}; SELECT 2`,
    );
    // no CONNECTION keyword within the statement's range
    expect(redactSecrets(sql, [{ spot: "connection", stmtStart: 0, stmtEnd: 8 }])).toBe(
      `${REDACTED_SECRET_STATEMENT}; ALTER SUBSCRIPTION s CONNECTION 'password=sekrit1'; SELECT 2`,
    );
  });
});

describe("unparseable text with a user mapping, subscription or dblink secret", () => {
  const cases: [sql: string, expected: string][] = [
    [
      "CREATE USER MAPPING FOR bob SERVER foo OPTIONS (password 'sekrit1' 'more')",
      "CREATE USER MAPPING FOR bob SERVER foo OPTIONS (password '********')",
    ],
    [
      "ALTER USER MAPPING FOR bob SERVER foo OPTIONS (SET password 'sekrit1' BOGUS)",
      "ALTER USER MAPPING FOR bob SERVER foo OPTIONS (SET password '********' BOGUS)",
    ],
    [
      "ALTER SERVER s OPTIONS (ADD \"sslpassword\" 'sekrit1' x)",
      "ALTER SERVER s OPTIONS (ADD \"sslpassword\" '********' x)",
    ],
    [
      "CREATE SUBSCRIPTION s CONNECTION 'host=h password=sekrit1' PUBLICATON p",
      "CREATE SUBSCRIPTION s CONNECTION '********' PUBLICATON p",
    ],
    [
      "CREATE SUBSCRIPTION s CONNECTION 'host=h password=sekrit1' 'more' PUBLICATION p",
      "CREATE SUBSCRIPTION s CONNECTION '********' PUBLICATION p",
    ],
    ["ALTER SUBSCRIPTION s CONNECTION 'postgresql://u:sekrit1@h/d' x", "ALTER SUBSCRIPTION s CONNECTION '********' x"],
    ["SELECT dblink_connect('c', 'host=h password=sekrit1'", "SELECT dblink_connect('c', '********'"],
    ["SELECT dblink_connect('postgresql://u:sekrit1@h/d'", "SELECT dblink_connect('********'"],
    ["SELEC dblink_exec('password=sekrit1', 'x')", "SELEC dblink_exec('********', 'x')"],
    // unterminated: the whole text goes
    ["SELECT dblink_connect('host=h password=sekrit1", REDACTED_SECRET_STATEMENT],
    ["ALTER SUBSCRIPTION s CONNECTION 'postgresql://u:sekrit1@h/d", REDACTED_SECRET_STATEMENT],
  ];
  it.each(cases)("%j", (sql, expected) => {
    const a = analyzer.analyze(sql);
    expect(a.redacted).toBe(expected);
    expect(a.error).toBeDefined();
    expect(a.error).not.toContain("sekrit1");
    expect(a.facts.unparseable?.reason).toBe(a.error);
  });

  it("unparseable text without a secret keeps its text and error", () => {
    for (const sql of ["SELECT 'https://example.com/a@b' x y", "SELECT 'https://x@y", "SELEC 'host=h'"]) {
      const a = analyzer.analyze(sql);
      expect(a.redacted, sql).toBeUndefined();
      expect(a.error, sql).toMatch(/at or near "/);
    }
  });
});

describe("no secret ever reaches redacted", () => {
  it("for generated secrets in every supported statement", () => {
    const secret = fc
      .string({ unit: fc.constantFrom(..."abcXYZ019 '\"-;$\\é😀@:/=\n"), minLength: 1, maxLength: 20 })
      .map((s) => `Pw~${s}~`);
    const q = (p: string) => `'${p.replace(/'/g, "''")}'`;
    const e = (p: string) => `E'${p.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
    const form = fc.constantFrom(
      (p: string) => `CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password ${q(p)})`,
      (p: string) => `ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET password ${e(p)}, ADD sslpassword ${q(p)})`,
      (p: string) => `SELECT 1; CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS (password ${q(p)}); SELECT 2`,
      (p: string) => `CREATE SUBSCRIPTION s CONNECTION ${q(`host=h password=${p}`)} PUBLICATION p`,
      (p: string) => `ALTER SUBSCRIPTION s CONNECTION ${e(`postgresql://u:${p.replace(/[@/]/g, "")}x@h/d`)}`,
      (p: string) => `SELECT dblink_connect('c', ${q(`password=${p}`)})`,
      (p: string) => `SELECT * FROM dblink(${e(`host=h password=${p}`)}, 'SELECT 1') AS t(a int)`,
    );
    fc.assert(
      fc.property(secret, form, (p, make) => {
        const sql = make(p);
        const a = analyzer.analyze(sql);
        expect(a.error, sql).toBeUndefined();
        const text = a.redacted ?? "";
        expect(text, sql).toContain("'********'");
        expect(text, sql).not.toContain("Pw~");
        expect(analyzer.analyze(text).facts).toEqual(a.facts);
      }),
      { numRuns: 300 },
    );
  });
});
