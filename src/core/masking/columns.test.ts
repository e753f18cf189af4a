import { describe, expect, it } from "vitest";
import { ColumnRules, splitPattern } from "./columns.js";
import { Masker } from "./masker.js";

const ref = (schema: string, table: string, column: string) => ({ schema, table, column });

describe("column rules", () => {
  it("matches table.column in any schema", () => {
    const r = new ColumnRules(["users.email"]);
    expect(r.matches(ref("public", "users", "email"))).toBe(true);
    expect(r.matches(ref("billing", "users", "email"))).toBe(true);
    expect(r.matches(ref("public", "users", "name"))).toBe(false);
    expect(r.matches(ref("public", "customers", "email"))).toBe(false);
  });

  it("matches schema.table.column only in that schema", () => {
    const r = new ColumnRules(["billing.cards.number"]);
    expect(r.matches(ref("billing", "cards", "number"))).toBe(true);
    expect(r.matches(ref("public", "cards", "number"))).toBe(false);
  });

  it("matches *.column, table.* and schema.table.*", () => {
    const r = new ColumnRules(["*.password", "secrets.*", "audit.tokens.*"]);
    expect(r.matches(ref("public", "users", "password"))).toBe(true);
    expect(r.matches(ref("x", "y", "password"))).toBe(true);
    expect(r.matches(ref("public", "secrets", "anything"))).toBe(true);
    expect(r.matches(ref("audit", "tokens", "value"))).toBe(true);
    expect(r.matches(ref("public", "tokens", "value"))).toBe(false);
    expect(r.matches(ref("public", "users", "name"))).toBe(false);
  });

  it("matches globs inside a part", () => {
    const r = new ColumnRules(["*.api_key*", "user?.ssn", "tenant_*.*.email"]);
    expect(r.matches(ref("public", "t", "api_key_hash"))).toBe(true);
    expect(r.matches(ref("public", "users", "ssn"))).toBe(true);
    expect(r.matches(ref("public", "user", "ssn"))).toBe(false);
    expect(r.matches(ref("tenant_42", "people", "email"))).toBe(true);
    expect(r.matches(ref("public", "people", "email"))).toBe(false);
  });

  it("compares unquoted names case-insensitively (PostgreSQL folds them)", () => {
    const r = new ColumnRules(["Users.EMAIL", "public.Orders.*"]);
    expect(r.matches(ref("public", "users", "email"))).toBe(true);
    expect(r.matches(ref("public", "USERS", "Email"))).toBe(true); // created as "USERS"."Email"
    expect(r.matches(ref("PUBLIC", "orders", "id"))).toBe(true);
  });

  it("compares quoted parts exactly", () => {
    const r = new ColumnRules(['"Users".email', '"my.schema"."T"."Col"""']);
    expect(r.matches(ref("public", "Users", "email"))).toBe(true);
    expect(r.matches(ref("public", "Users", "EMAIL"))).toBe(true); // unquoted part still folds
    expect(r.matches(ref("public", "users", "email"))).toBe(false);
    expect(r.matches(ref("my.schema", "T", 'Col"'))).toBe(true);
    expect(r.matches(ref("my.schema", "t", 'Col"'))).toBe(false);
  });

  it("splits patterns and rejects malformed ones", () => {
    expect(splitPattern("a.b")?.map((p) => p.text)).toEqual(["a", "b"]);
    expect(splitPattern('"a.b".c')?.map((p) => p.text)).toEqual(["a.b", "c"]);
    expect(splitPattern("a")).toBeUndefined();
    expect(splitPattern("a.b.c.d")).toBeUndefined();
    expect(splitPattern("a..b")).toBeUndefined();
    expect(splitPattern('"a.b')).toBeUndefined();
    expect(() => new ColumnRules(["nope"])).toThrow(/invalid masking column pattern/);
  });

  it("is exposed through the Masker", () => {
    const m = Masker.from({ columns: ["users.email"] });
    expect(m.enabled && m.hasColumnRules && !m.hasDetectors).toBe(true);
    expect(m.columnMatches(ref("public", "users", "email"))).toBe(true);
    expect(Masker.from({ detectors: ["email"] }).columnMatches(ref("public", "users", "email"))).toBe(false);
  });
});
