import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { startHarness, statementLog } from "./harness.js";

const GUARDRAILS = `guardrails:
  - deny: { functions: [pg_sleep, pg_catalog.pg_terminate_backend] }`;
const BLOCKED =
  /^gatehouse: blocked by connections\[0\]\.guardrails\[0\] \(deny functions pg_sleep, pg_catalog\.pg_terminate_backend\)$/;

/** Calls of denied functions, each spelt or placed differently; each would run if it reached the target. */
function calls(marker: string) {
  return [
    { name: "select list", sql: `select pg_sleep(0) /* ${marker} */`, fn: "pg_sleep" },
    {
      name: "FROM, qualified, upper case",
      sql: `select * from pg_catalog.PG_SLEEP(0) /* ${marker} */`,
      fn: "pg_catalog.pg_sleep",
    },
    {
      name: "scalar subquery, bare name of a qualified rule",
      sql: `select (select pg_terminate_backend(0)) /* ${marker} */`,
      fn: "pg_terminate_backend",
    },
    {
      name: "CTE",
      sql: `with x as (select "pg_sleep"(0) as s) select * from x /* ${marker} */`,
      fn: "pg_sleep",
    },
  ];
}

describe("postgres gateway: functions guardrails", () => {
  it("refuses calls of denied functions with 42501 naming the rule, the target never sees them, other selects run", async () => {
    const h = await startHarness({ appDb: GUARDRAILS });
    const marker = `m${randomUUID().replaceAll("-", "")}`;
    try {
      const c = await h.client();
      for (const call of calls(marker)) {
        const err = await c.query(call.sql).catch((x: unknown) => x);
        expect((err as { code?: string }).code, call.name).toBe("42501");
        expect((err as Error).message, call.name).toMatch(BLOCKED);
        expect((err as { detail?: string }).detail, call.name).toContain(`calling ${call.fn} is denied`);
        const alive = await c.query(`select now() is not null as ok /* ${marker} alive */`);
        expect(alive.rows, call.name).toEqual([{ ok: true }]);
      }
      // extended protocol: refused at Parse, before any parameter is bound
      const ext = await c.query(`select pg_sleep($1) /* ${marker} ext */`, [0]).catch((x: unknown) => x);
      expect((ext as { code?: string }).code).toBe("42501");
      // psql, and an unrelated select on the same connection
      const psql = await h.psql(`SELECT pg_sleep(0) /* ${marker} psql */`);
      expect(psql.stderr).toMatch(/ERROR: {2}gatehouse: blocked by connections\[0\]\.guardrails\[0\] \(deny functions/);
      const ok = await h.psql(`SELECT lower('OK') /* ${marker} psql ok */`);
      expect(ok).toMatchObject({ code: 0, stdout: "ok", stderr: "" });

      // the target ran the allowed statements and none of the refused ones
      const logged = (await statementLog(marker)).filter((l) => / LOG: {2}(statement|execute [^:]*):/.test(l));
      expect(logged.filter((l) => l.includes(`${marker} alive`))).toHaveLength(calls(marker).length);
      expect(logged.some((l) => l.includes(`${marker} psql ok`))).toBe(true);
      for (const l of logged) expect(l).not.toMatch(/pg_sleep|pg_terminate_backend/i);
    } finally {
      await h.stop();
    }
  });

  it("the same calls run once the rule is removed", async () => {
    const h = await startHarness();
    const marker = `m${randomUUID().replaceAll("-", "")}`;
    try {
      const c = await h.client();
      for (const call of calls(marker)) {
        const r = await c.query(call.sql).catch((x: unknown) => x);
        expect(r instanceof Error ? r.message : "ok", call.name).toBe("ok");
      }
      const logged = await statementLog(marker);
      expect(logged.some((l) => l.includes("pg_catalog.PG_SLEEP(0)"))).toBe(true);
    } finally {
      await h.stop();
    }
  });
});
