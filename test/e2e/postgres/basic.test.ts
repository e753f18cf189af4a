import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ appDb: "guardrails:\n  - deny: { statements: [drop, truncate] }" });
});
afterAll(async () => h?.stop());

describe("postgres gateway: basics", () => {
  it("runs a query through psql", async () => {
    const r = await h.psql("select 1 + 1");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("2");
  });

  it("runs queries with the pg driver, with parameters (extended protocol)", async () => {
    const c = await h.client();
    const r = await c.query("select $1::int + $2::int as n, current_user as u", [20, 22]);
    expect(r.rows).toEqual([{ n: 42, u: "scramuser" }]);
    const simple = await c.query("select 'a' as x; select 'b' as y");
    expect(Array.isArray(simple)).toBe(true);
  });

  it("blocks a denied statement with 42501 and the session stays usable", async () => {
    const c = await h.client();
    const err = await c.query("drop table if exists nothing_here").catch((e) => e);
    expect(err.code).toBe("42501");
    expect(err.message).toMatch(/gatehouse: blocked by connections\[0\]\.guardrails\[0\]/);
    expect((await c.query("select 7 as n")).rows).toEqual([{ n: 7 }]);
  });
});
