/**
 * The target can be made to read SQL text differently from the gateway's parser without any SET the analyzer
 * would see: `set_config('standard_conforming_strings', 'off', ...)`, a client_encoding at login. Then
 * `SELECT '\''; DROP TABLE t; --'` is one string literal to the gateway and a DROP to the server. The adapter
 * follows the target's ParameterStatus reports and treats text whose reading depends on them as unparseable
 * (on_unparseable decides; the default denies), with a real PostgreSQL 15 behind it.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodyOf, type Frame } from "../../../src/protocols/postgres/framing.js";
import { message, parseErrorFields, query } from "../../../src/protocols/postgres/wire.js";
import { rawSession, startHarness, type Harness } from "./harness.js";

const GUARDRAILS = `guardrails:
  - deny: { statements: [drop, truncate] }
  - deny: { statements: [delete, update], without_where: true }`;
const EVASION = (t: string) => `SELECT '\\''; DROP TABLE ${t}; --'`;
const UNPARSEABLE = "gatehouse: blocked by connections[0].on_unparseable (on_unparseable deny)";
const SCS_OFF =
  /^request could not be analyzed \(standard_conforming_strings is off on the target, and this text contains a backslash\)$/;

interface PgError {
  code?: string;
  message: string;
  detail?: string;
}

let h: Harness;
let admin: pg.Client;
beforeAll(async () => {
  h = await startHarness({ appDb: GUARDRAILS });
  admin = await h.client("admin-db");
});
afterAll(async () => {
  await admin?.end();
  await h?.stop();
});

async function freshTable(): Promise<string> {
  const t = `lex_${randomUUID().slice(0, 8)}`;
  await admin.query(`create table ${t} (id int)`);
  return t;
}

async function exists(t: string): Promise<boolean> {
  return (await admin.query("select to_regclass($1) is not null as e", [t])).rows[0].e as boolean;
}

describe("postgres gateway: text the target reads differently from the gateway", () => {
  it("after set_config turns standard_conforming_strings off, backslash text is unparseable; plain text and a return to on work", async () => {
    const t = await freshTable();
    const c = await h.client();
    try {
      // control: with the setting on, the gateway reads the evasion as the server does (one string, no DROP)
      expect((await c.query(EVASION(t))).rows).toEqual([{ "?column?": "\\'; DROP TABLE " + t + "; --" }]);
      await c.query("SELECT set_config('standard_conforming_strings', 'off', false)");
      const err = await c.query(EVASION(t)).then(
        () => undefined,
        (e: unknown) => e as PgError,
      );
      expect(err?.code).toBe("42501");
      expect(err?.message).toBe(UNPARSEABLE);
      expect(err?.detail).toMatch(SCS_OFF);
      expect(await exists(t)).toBe(true);
      // text without a backslash reads the same either way: the session goes on
      expect((await c.query("SELECT 'plain' AS v")).rows).toEqual([{ v: "plain" }]);
      // a rollback that restores the setting is seen too (the server reports it at ReadyForQuery)
      await c.query("BEGIN");
      await c.query("SELECT set_config('standard_conforming_strings', 'on', true)");
      expect((await c.query("SELECT '\\' AS v")).rows).toEqual([{ v: "\\" }]);
      await c.query("ROLLBACK");
      expect((await c.query("SELECT '\\' AS v").catch((e: Error) => e)) instanceof Error).toBe(true);
      await c.query("SELECT set_config('standard_conforming_strings', 'on', false)");
      expect((await c.query("SELECT '\\' AS v")).rows).toEqual([{ v: "\\" }]);
    } finally {
      await c.end();
    }
    expect(await exists(t)).toBe(true);
  });

  it("is allowed again when on_unparseable allows (the rule, not a blanket refusal, decides)", async () => {
    const open = await startHarness({
      appDb: `${GUARDRAILS}\non_unparseable: allow`,
    });
    const t = `lex_${randomUUID().slice(0, 8)}`;
    const c = await open.client();
    try {
      await c.query(`create table ${t} (id int)`);
      await c.query("SELECT set_config('standard_conforming_strings', 'off', false)");
      await c.query(EVASION(t));
      expect(await exists(t)).toBe(false); // the server did read a DROP: only the policy stood in its way
    } finally {
      await c.end();
      await open.stop();
    }
  });

  it("a pipelined query waits for the earlier one's settings before it is judged (simple protocol)", async () => {
    const t = await freshTable();
    const conn = await raw();
    try {
      // both in one write: the second arrives before the target has reported the first one's effect
      conn.socket.write(
        Buffer.concat([query("SELECT set_config('standard_conforming_strings', 'off', false)"), query(EVASION(t))]),
      );
      const first = await conn.untilReady();
      expect(first.filter((f) => f.type === "E")).toEqual([]);
      const second = await conn.untilReady();
      const errors = second.filter((f) => f.type === "E").map((f) => parseErrorFields(bodyOf(f)));
      expect(errors.map((e) => e.get("C"))).toEqual(["42501"]);
      expect(errors[0]?.get("M")).toBe(UNPARSEABLE);
      expect(errors[0]?.get("D")).toMatch(SCS_OFF);
    } finally {
      conn.socket.destroy();
    }
    expect(await exists(t)).toBe(true);
  });

  it("in one extended-protocol batch, backslash text after an Execute is unparseable (its effect is not yet known)", async () => {
    const t = await freshTable();
    await admin.query(`insert into ${t} values (1)`);
    // one statement either way (a Parse takes only one): to the gateway a SELECT of a string, to the server with
    // standard_conforming_strings off a DELETE without WHERE in a CTE
    const hidden = `WITH a AS (SELECT '\\''), d AS (DELETE FROM ${t} RETURNING 1) SELECT 1 FROM a --' ) SELECT 1`;
    const conn = await raw();
    try {
      conn.socket.write(
        Buffer.concat([
          parseMsg("SELECT set_config('standard_conforming_strings', 'off', false)"),
          bindMsg(),
          executeMsg(),
          // no Sync in between: the server parses this after running the set_config
          parseMsg(hidden),
          bindMsg(),
          executeMsg(),
          message("S"),
        ]),
      );
      const frames = await conn.untilReady();
      const errors = frames.filter((f) => f.type === "E").map((f) => parseErrorFields(bodyOf(f)));
      expect(errors.map((e) => e.get("C"))).toEqual(["42501"]);
      expect(errors[0]?.get("M")).toBe(UNPARSEABLE);
      expect(errors[0]?.get("D")).toMatch(/earlier statement of the same batch/);
    } finally {
      conn.socket.destroy();
    }
    expect((await admin.query(`select count(*)::int as n from ${t}`)).rows).toEqual([{ n: 1 }]);
  });

  it("backslash text sent during COPY FROM STDIN does not wait for the copy forever: the target answers", async () => {
    const t = await freshTable();
    const conn = await raw();
    try {
      // pipelined: the Query arrives while the target waits for COPY data. PostgreSQL answers a Query there with
      // 08P01 and ends the connection ("protocol synchronization was lost"); the gateway must not wait instead.
      conn.socket.write(Buffer.concat([query(`COPY ${t} FROM STDIN`), query("SELECT 'é\\' AS v")]));
      const frames = await conn.untilReady().catch((e: Error & { frames?: Frame[] }) => e.frames ?? []);
      expect(frames.map((f) => f.type)).toContain("G");
      const codes = frames.filter((f) => f.type === "E").map((f) => parseErrorFields(bodyOf(f)).get("C"));
      expect(codes[0]).toBe("08P01");
    } finally {
      conn.socket.destroy();
    }
  }, 20_000);

  it("after an error earlier in the batch, backslash text is not held back (the target skips it until Sync)", async () => {
    const conn = await raw();
    try {
      conn.socket.write(
        Buffer.concat([
          parseMsg("SELECT * FROM no_such_table_lexer"), // the target fails it, then skips everything up to Sync,
          query("SELECT 1"), // this Query included, so its ReadyForQuery never comes
          parseMsg("SELECT '\\'"), // waiting for that ReadyForQuery here would wait for ever
          message("S"),
        ]),
      );
      const frames = await conn.untilReady();
      const codes = frames.filter((f) => f.type === "E").map((f) => parseErrorFields(bodyOf(f)).get("C"));
      expect(codes).toEqual(["42P01"]);
      conn.socket.write(query("SELECT 2"));
      expect((await conn.untilReady()).filter((f) => f.type === "D")).toHaveLength(1);
    } finally {
      conn.socket.destroy();
    }
  }, 20_000);

  it("a client_encoding other than UTF-8 chosen at login makes non-ASCII text unparseable; ASCII works", async () => {
    const conn = await raw({ client_encoding: "LATIN1" });
    try {
      conn.socket.write(query("SELECT 'café' AS v"));
      const refused = (await conn.untilReady()).filter((f) => f.type === "E").map((f) => parseErrorFields(bodyOf(f)));
      expect(refused.map((e) => e.get("C"))).toEqual(["42501"]);
      expect(refused[0]?.get("M")).toBe(UNPARSEABLE);
      expect(refused[0]?.get("D")).toMatch(
        /the target reads text as LATIN1, not UTF-8, and this text is not plain ASCII/,
      );
      conn.socket.write(query("SELECT 'cafe' AS v"));
      const ok = await conn.untilReady();
      expect(ok.filter((f) => f.type === "E")).toEqual([]);
      expect(ok.filter((f) => f.type === "D")).toHaveLength(1);
    } finally {
      conn.socket.destroy();
    }
  });
});

function parseMsg(text: string): Buffer {
  return message("P", Buffer.concat([Buffer.from("\0"), Buffer.from(`${text}\0`), Buffer.alloc(2)]));
}
function bindMsg(): Buffer {
  // unnamed portal and statement, no parameter formats, no parameters, no result formats
  return message("B", Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));
}
function executeMsg(): Buffer {
  return message("E", Buffer.from([0, 0, 0, 0, 0]));
}

/** A logged-in raw connection to the gateway, reading frames up to each ReadyForQuery. */
const raw = (params: Record<string, string> = {}) => rawSession(h, params);
