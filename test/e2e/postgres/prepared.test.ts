/**
 * `EXECUTE name` is decided and audited with what it runs: the body of the statement PREPAREd (in SQL, or by a named
 * Parse message) under that name in the session, as the target holds it. Real psql-style simple queries (pg's
 * simple protocol), the pg driver's named statements and raw protocol messages, against the real PostgreSQL 15.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { bodyOf } from "../../../src/protocols/postgres/framing.js";
import { message, parse, parseErrorFields, query } from "../../../src/protocols/postgres/wire.js";
import { approver, gatehouse, pendingApproval } from "../approvals/support.js";
import { rawSession, startHarness, type Harness } from "./harness.js";

const UNPARSEABLE = "gatehouse: blocked by connections[0].on_unparseable (on_unparseable deny)";

let h: Harness;
let admin: pg.Client;
beforeAll(async () => {
  h = await startHarness({
    appDb: `guardrails:
  - deny: { statements: [delete, update], without_where: true }
approvals:
  - require: { statements: [delete], tables: ["gh_pa_*"] }
    approvers: [group:dba]
    hold: 1m
  - require: { statements: [delete], tables: ["gh_p0_*"] }
    approvers: [group:dba]
    hold: 0`,
    connections: `
  - name: loose-db
    type: postgres
    target: { TARGET }
    access: [group:ci]
    guardrails:
      - deny: { statements: [delete, update], without_where: true }
    on_unparseable: allow`,
  });
  admin = await h.client("admin-db");
}, 60_000);
afterAll(async () => {
  await admin?.end();
  await h?.stop();
});

/** A fresh table with ids 1..n, set up without guardrails. */
async function table(prefix = "gh_ps", n = 3): Promise<string> {
  const t = `${prefix}_${randomUUID().slice(0, 8)}`;
  await admin.query(`create table ${t} (id int); insert into ${t} select generate_series(1, ${n})`);
  return t;
}

async function ids(t: string): Promise<number[]> {
  return (await admin.query(`select id from ${t} order by id`)).rows.map((r: { id: number }) => r.id);
}

/**
 * Prepares `name` where the gateway cannot see it: inside a DO block (the text is opaque to it). A realistic way
 * for a statement to exist on the target that the gateway never judged.
 */
const prepareUnseen = (c: pg.Client, name: string, body: string) =>
  c.query(`DO $$ BEGIN EXECUTE 'PREPARE ${name} AS ${body}'; END $$`);

/** The newest audit record of a request whose text starts with `text`. */
async function auditOf(text: string): Promise<AuditRecord | undefined> {
  const records = await h.gateway.store.tailAudit(400);
  return records.filter((r) => String(r.data?.["text"] ?? "").startsWith(text)).at(-1);
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: { code?: string; message: string }) => e,
  );

describe("postgres gateway: EXECUTE of prepared statements", () => {
  it("is decided and audited with the body it runs: SQL PREPARE, a named Parse, EXPLAIN ANALYZE and CREATE TABLE AS", async () => {
    const t = await table();
    const c = await h.client();
    await c.query(`PREPARE del_one (int) AS DELETE FROM ${t} WHERE id = $1`);
    await c.query("EXECUTE del_one(1)");
    expect(await ids(t)).toEqual([2, 3]);
    expect(await auditOf("EXECUTE del_one(1)")).toMatchObject({
      type: "request",
      decision: "allow",
      data: {
        text: `EXECUTE del_one(1)\n-- prepared statement "del_one": PREPARE del_one (int) AS DELETE FROM ${t} WHERE id = $1`,
        kinds: ["execute"],
        prepared: [{ name: "del_one", kinds: ["delete"], tables: [t] }],
      },
    });

    // a statement a driver prepared over the protocol is in the same namespace
    await c.query({ name: "peek", text: `SELECT id, pg_backend_pid() FROM ${t} WHERE id = $1`, values: [2] });
    expect((await c.query("EXECUTE peek(2)")).rows).toHaveLength(1);
    expect((await auditOf("EXECUTE peek(2)"))?.data?.["prepared"]).toEqual([
      { name: "peek", kinds: ["select"], tables: [t], functions: ["pg_backend_pid"] },
    ]);

    await c.query("EXPLAIN ANALYZE EXECUTE del_one(2)");
    expect(await ids(t)).toEqual([3]);
    expect((await auditOf("EXPLAIN ANALYZE EXECUTE del_one(2)"))?.data).toMatchObject({
      kinds: ["explain"],
      prepared: [{ name: "del_one", kinds: ["delete"], tables: [t] }],
    });
    await c.query(`CREATE TABLE ${t}_copy AS EXECUTE peek(3)`);
    expect((await auditOf(`CREATE TABLE ${t}_copy AS EXECUTE peek(3)`))?.data).toMatchObject({
      kinds: ["create_table"],
      prepared: [{ name: "peek", kinds: ["select"], tables: [t] }],
    });

    // PREPARE and EXECUTE in one query: the EXECUTE runs what the PREPARE before it defined
    await c.query(`PREPARE del_all_but AS DELETE FROM ${t} WHERE id <> 3; EXECUTE del_all_but`);
    expect((await auditOf("PREPARE del_all_but"))?.data?.["prepared"]).toEqual([
      { name: "del_all_but", kinds: ["delete"], tables: [t] },
    ]);
  });

  it("a statement prepared where the gateway could not see it is unknown: on_unparseable decides (deny by default, allow runs it)", async () => {
    const t = await table();
    const c = await h.client();
    await prepareUnseen(c, "sneaky", `DELETE FROM ${t}`);
    const err = await failure(c.query("EXECUTE sneaky"));
    expect(err).toMatchObject({ code: "42501", message: UNPARSEABLE });
    expect((err as { detail?: string }).detail).toBe(
      'request could not be analyzed (EXECUTE of prepared statement "sneaky", which the gateway did not see prepared in this session)',
    );
    expect(await ids(t)).toEqual([1, 2, 3]);
    expect((await c.query("SELECT 1 AS alive")).rows).toEqual([{ alive: 1 }]);
    expect(await auditOf("EXECUTE sneaky")).toMatchObject({
      type: "request.blocked",
      data: {
        prepared: [{ name: "sneaky", unknown: true }],
        text: expect.stringContaining("not known to the gateway"),
      },
    });

    // under on_unparseable: allow it runs, as any text the gateway cannot judge would
    const loose = await h.client("loose-db");
    await prepareUnseen(loose, "sneaky", `DELETE FROM ${t} WHERE id = 1`);
    await loose.query("EXECUTE sneaky");
    expect(await ids(t)).toEqual([2, 3]);
  });

  it("DEALLOCATE, DEALLOCATE ALL, DISCARD ALL and a protocol Close forget the statement", async () => {
    const t = await table();
    const c = await h.client();
    for (const [i, forget] of ["DEALLOCATE gone", "DEALLOCATE ALL", "DISCARD ALL"].entries()) {
      await c.query(`PREPARE gone AS SELECT ${i}`);
      await c.query(forget);
      // had the gateway kept the SELECT, this DELETE would run as if it were one
      await prepareUnseen(c, "gone", `DELETE FROM ${t}`);
      expect(await failure(c.query("EXECUTE gone")), forget).toMatchObject({ code: "42501", message: UNPARSEABLE });
      await c.query("DEALLOCATE gone");
    }
    // a named statement closed over the protocol
    const conn = await rawSession(h);
    try {
      const close = message("C", Buffer.from("Sclosed\0"));
      conn.socket.write(Buffer.concat([parse("SELECT 1", "closed"), message("S"), close, message("S")]));
      await conn.untilReady();
      await conn.untilReady();
      conn.socket.write(query(`DO $$ BEGIN EXECUTE 'PREPARE closed AS DELETE FROM ${t}'; END $$`));
      await conn.untilReady();
      conn.socket.write(query("EXECUTE closed"));
      const errors = (await conn.untilReady()).filter((f) => f.type === "E").map((f) => parseErrorFields(bodyOf(f)));
      expect(errors.map((e) => [e.get("C"), e.get("M")])).toEqual([["42501", UNPARSEABLE]]);
    } finally {
      conn.socket.destroy();
    }
    expect(await ids(t)).toEqual([1, 2, 3]);
  });

  it("only what the target carried out counts: a rejected PREPARE, one in a failed transaction, one after an error; a rolled-back one stays", async () => {
    const t = await table();
    const c = await h.client();
    // the name exists (unseen), so the target rejects this PREPARE and keeps its DELETE
    await prepareUnseen(c, "taken", `DELETE FROM ${t}`);
    expect(await failure(c.query("PREPARE taken AS SELECT 1"))).toMatchObject({ code: "42P05" });
    expect(await failure(c.query("EXECUTE taken"))).toMatchObject({ code: "42501", message: UNPARSEABLE });

    await c.query("BEGIN");
    await failure(c.query("SELECT 1/0"));
    expect(await failure(c.query("PREPARE in_failed AS SELECT 1"))).toMatchObject({ code: "25P02" });
    await c.query("ROLLBACK");
    await prepareUnseen(c, "in_failed", `DELETE FROM ${t}`);
    expect(await failure(c.query("EXECUTE in_failed"))).toMatchObject({ code: "42501", message: UNPARSEABLE });

    // a query stops at its first error: the PREPARE after it never ran
    expect(await failure(c.query("SELECT 1/0; PREPARE after_error AS SELECT 1"))).toMatchObject({ code: "22012" });
    await prepareUnseen(c, "after_error", `DELETE FROM ${t}`);
    expect(await failure(c.query("EXECUTE after_error"))).toMatchObject({ code: "42501", message: UNPARSEABLE });

    expect(await failure(c.query("PREPARE no_table AS SELECT * FROM gh_no_such_table"))).toMatchObject({
      code: "42P01",
    });
    await prepareUnseen(c, "no_table", `DELETE FROM ${t}`);
    expect(await failure(c.query("EXECUTE no_table"))).toMatchObject({ code: "42501", message: UNPARSEABLE });
    expect(await ids(t)).toEqual([1, 2, 3]);

    // PREPARE is not transactional: a ROLLBACK keeps it, and so does the gateway
    await c.query("BEGIN");
    await c.query(`PREPARE kept AS SELECT count(*)::int AS n FROM ${t}`);
    await c.query("ROLLBACK");
    expect((await c.query("EXECUTE kept")).rows).toEqual([{ n: 3 }]);
    // ... also when a later statement of the same query fails
    expect(await failure(c.query(`PREPARE kept2 AS SELECT id FROM ${t}; SELECT 1/0`))).toMatchObject({
      code: "22012",
    });
    expect((await c.query("EXECUTE kept2")).rows).toHaveLength(3);
    expect((await auditOf("EXECUTE kept2"))?.data?.["prepared"]).toEqual([
      { name: "kept2", kinds: ["select"], tables: [t] },
    ]);
  });

  it("pipelined: an EXECUTE right behind the Parse that prepares it waits for the target's answer", async () => {
    const t = await table();
    const conn = await rawSession(h);
    try {
      conn.socket.write(
        Buffer.concat([
          parse(`SELECT id FROM ${t}`, "piped"),
          message("S"),
          query("EXECUTE piped"),
          parse(`SELECT * FROM gh_no_such_table`, "piped_bad"),
          message("S"),
          query(`DO $$ BEGIN EXECUTE 'PREPARE piped_bad AS DELETE FROM ${t}'; END $$; EXECUTE piped_bad`),
        ]),
      );
      await conn.untilReady();
      const rows = (await conn.untilReady()).filter((f) => f.type === "D");
      expect(rows).toHaveLength(3);
      await conn.untilReady(); // the failed Parse
      const last = (await conn.untilReady()).filter((f) => f.type === "E").map((f) => parseErrorFields(bodyOf(f)));
      expect(last.map((e) => e.get("M"))).toEqual([UNPARSEABLE]);
    } finally {
      conn.socket.destroy();
    }
    expect((await auditOf("EXECUTE piped"))?.data?.["prepared"]).toEqual([
      { name: "piped", kinds: ["select"], tables: [t] },
    ]);
    expect(await ids(t)).toEqual([1, 2, 3]);
  });

  it("a driver's statement that EXECUTEs a prepared statement may not run it once that statement changed", async () => {
    const c = await h.client();
    await c.query("PREPARE target_one AS SELECT 1 AS v");
    const run = { name: "runs_target", text: "EXECUTE target_one", values: [] };
    expect((await c.query(run)).rows).toEqual([{ v: 1 }]);
    expect((await c.query(run)).rows).toEqual([{ v: 1 }]);
    await c.query("DEALLOCATE target_one");
    await c.query("PREPARE target_one AS SELECT 2 AS v");
    // pg sends only Bind/Execute for a statement it already parsed: it would run the new body unjudged
    expect(await failure(c.query(run))).toMatchObject({
      code: "42501",
      message: 'gatehouse: prepared statement "target_one" changed after this statement was checked at its Parse',
    });
    expect((await c.query("SELECT 1 AS alive")).rows).toEqual([{ alive: 1 }]);
  });

  it("approval: each EXECUTE of a statement that needs it is held again, and the approver sees the body", async () => {
    const t = await table("gh_pa");
    const alice = await approver(h, "alice");
    const c = await h.client();
    // the driver prepares (and runs) the DELETE once, approved
    const first = c.query({ name: "del", text: `DELETE FROM ${t} WHERE id = $1`, values: [1] });
    const held = await pendingApproval(h, "hold");
    expect((await gatehouse(h, alice, ["approvals", "approve", held.id])).code).toBe(0);
    await first;
    expect(await ids(t)).toEqual([2, 3]);

    // running it again from SQL is a new request: held, and denied here
    const second = failure(c.query("EXECUTE del(2)"));
    const again = await pendingApproval(h, "hold");
    expect(again.id).not.toBe(held.id);
    expect(again.request?.text).toBe(`EXECUTE del(2)\n-- prepared statement "del": DELETE FROM ${t} WHERE id = $1`);
    expect((await gatehouse(h, alice, ["approvals", "deny", again.id, "--reason", "not that one"])).code).toBe(0);
    expect(await second).toMatchObject({ code: "42501" });
    expect(await ids(t)).toEqual([2, 3]);

    const third = c.query("EXECUTE del(3)");
    const last = await pendingApproval(h, "hold");
    expect((await gatehouse(h, alice, ["approvals", "approve", last.id])).code).toBe(0);
    await third;
    expect(await ids(t)).toEqual([2]);
  }, 60_000);

  it("approval with hold: 0: an approved EXECUTE runs once, and only with the body it was approved for", async () => {
    const t = await table("gh_p0");
    const alice = await approver(h, "alice");
    const c = await h.client();
    /** Sends `sql` until it runs: refused with a pending approval first, approved, then sent again. */
    const approved = async (sql: string) => {
      expect(await failure(c.query(sql)), sql).toMatchObject({ code: "42501" });
      const pending = await pendingApproval(h, "retry");
      expect((await gatehouse(h, alice, ["approvals", "approve", pending.id])).code).toBe(0);
      await c.query(sql);
      return pending;
    };
    await approved(`PREPARE z (int) AS DELETE FROM ${t} WHERE id = $1`);
    const first = await approved("EXECUTE z(1)");
    expect(first.request?.text).toBe(
      `EXECUTE z(1)\n-- prepared statement "z": PREPARE z (int) AS DELETE FROM ${t} WHERE id = $1`,
    );
    expect(await ids(t)).toEqual([2, 3]);
    // the approval was for one run
    expect(await failure(c.query("EXECUTE z(1)"))).toMatchObject({ code: "42501" });
    const unused = await pendingApproval(h, "retry");
    expect((await gatehouse(h, alice, ["approvals", "approve", unused.id])).code).toBe(0);

    // `EXECUTE z(1)` is approved (and unused) for that body; z prepared again is another request
    await c.query("DEALLOCATE z");
    await approved(`PREPARE z (int) AS DELETE FROM ${t} WHERE id <> $1`);
    expect(await failure(c.query("EXECUTE z(1)"))).toMatchObject({ code: "42501" });
    expect(await ids(t)).toEqual([2, 3]);
  }, 60_000);
});
