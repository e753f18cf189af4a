import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "./harness.js";
import { untilSessionsSealed } from "../../support/sessions.js";

const id = randomUUID().slice(0, 8);
const users = `users_${id}`;
const orders = `orders_${id}`;
const view = `contacts_${id}`;
const MASK = "********";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    appDb: `masking:\n  columns: ["${users}.email", "*.password", "${users}.age"]\n  detectors: [credit_card]`,
    connections: `
  - name: detect-db
    type: postgres
    target: { TARGET }
    access: [group:ci]
    masking: { detectors: [credit_card, email] }`,
  });
  const setup = await h.psql(
    [
      `create table ${users} (id int primary key, email text, name text, password varchar(40), age int)`,
      `insert into ${users} values (1, 'alice@example.com', 'Alice', 'hunter2', 31), (2, 'bob@example.com', 'Bob', 's3cret', 42)`,
      `create table ${orders} (id int, user_id int, note text)`,
      `insert into ${orders} values (10, 1, 'paid with 4111 1111 1111 1111'), (11, 2, 'no card')`,
      `create view ${view} as select id as ident, email as contact, name from ${users}`,
      `create view v2_${view} as select contact as c2 from ${view}`,
    ].join(";"),
    { database: "admin-db" },
  );
  expect(setup.stderr).toBe("");
});
afterAll(async () => {
  await h?.psql(
    `drop view if exists v2_${view}; drop view if exists ${view}; drop table if exists ${users}, ${orders}`,
    {
      database: "admin-db",
    },
  );
  await h?.stop();
});

describe("postgres gateway: masking", () => {
  it("masks aliased, starred, joined and view columns by their true source", async () => {
    const c = await h.client();
    expect((await c.query(`select email as e from ${users} order by id`)).rows).toEqual([{ e: MASK }, { e: MASK }]);
    const star = await c.query(`select u.* from ${users} u where id = 1`);
    // text columns get the mask; a number cannot, so it becomes NULL
    expect(star.rows).toEqual([{ id: 1, email: MASK, name: "Alice", password: MASK, age: null }]);
    const joined = await c.query(
      `select o.id, x.email from ${orders} o join ${users} x on x.id = o.user_id order by o.id`,
    );
    expect(joined.rows.map((r) => r.email)).toEqual([MASK, MASK]);
    expect((await c.query(`select contact, name from ${view} order by ident`)).rows).toEqual([
      { contact: MASK, name: "Alice" },
      { contact: MASK, name: "Bob" },
    ]);
    expect((await c.query(`select c2 from v2_${view}`)).rows).toEqual([{ c2: MASK }, { c2: MASK }]);
    // extended protocol with parameters, and binary results
    const ext = await c.query({ text: `select email, age from ${users} where id = $1`, values: [2] });
    expect(ext.rows).toEqual([{ email: MASK, age: null }]);
    // pg supports binary results though its types omit the option
    const binaryQuery = { text: `select email, age from ${users} where id = $1`, values: [2], binary: true };
    const binary = await c.query(binaryQuery as unknown as string);
    expect(binary.rows).toEqual([{ email: null, age: null }]);
    // psql (simple protocol)
    expect((await h.psql(`select email, name from ${users} order by id`)).stdout).toBe(`${MASK}|Alice\n${MASK}|Bob`);
  });

  it("runs content detectors over text values", async () => {
    const c = await h.client();
    const r = await c.query(`select note from ${orders} order by id`);
    expect(r.rows[0].note).not.toContain("4111 1111 1111 1111");
    expect(r.rows[1].note).toBe("no card");
  });

  it("refuses COPY TO STDOUT where columns are masked, and scans COPY rows where only detectors apply", async () => {
    const refused = await h.psql(`\\copy (select email from ${users}) to stdout`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(
      /gatehouse: blocked by connections\[0\]\.masking \(COPY \.\.\. TO STDOUT cannot be masked/,
    );
    expect(refused.stdout).not.toContain("alice@example.com");
    const blocked = await h.gateway.store.tailAudit(5);
    expect(blocked.some((r) => r.type === "request.blocked" && r.rule === "connections[0].masking")).toBe(true);

    const copied = await h.psql(
      `\\copy (select u.email, o.note from ${users} u join ${orders} o on o.user_id = u.id order by o.id) to stdout`,
      {
        database: "detect-db",
      },
    );
    expect(copied.stderr).toBe("");
    expect(copied.stdout).not.toContain("alice@example.com");
    expect(copied.stdout).not.toContain("4111 1111 1111 1111");
    expect(copied.stdout.split("\n")).toHaveLength(2);
  });

  it("records what the client saw (masked) in the session recording", async () => {
    const c = await h.client();
    await c.query(`select email, name from ${users} where id = 1`);
    await c.end();
    await untilSessionsSealed(h.gateway.store);
    await h.gateway.recorder.flush(); // the result event is queued; written now rather than at the next batch
    const sessions = await h.gateway.store.listSessions({});
    let all = "";
    for (const s of sessions.filter((x) => x.connection === "app-db")) {
      all += JSON.stringify(await h.gateway.store.readRecordingEvents(s.session_id, { fromSeq: 1, limit: 10000 }));
    }
    expect(all).toContain(MASK);
    expect(all).not.toContain("alice@example.com");
    expect(all).not.toContain("4111 1111 1111 1111");
  });

  it("passes a result without masked columns through byte for byte", async () => {
    const sql = `select id, name, 'plain text' as t, now()::date as d from ${users} order by id`;
    const masked = await rawQuery(h, "app-db", sql);
    const plain = await rawQuery(h, "admin-db", sql);
    expect(masked.length).toBeGreaterThan(50);
    expect(masked.equals(plain)).toBe(true);
  });
});

/** Logs in with a hand-written client and returns the exact bytes answering one simple Query (through 'Z'). */
async function rawQuery(h: Harness, database: string, sql: string): Promise<Buffer> {
  const s = connect(h.port, h.host);
  await new Promise((r) => s.once("connect", r));
  const params = Buffer.from(`user\0ci-bot\0database\0${database}\0\0`);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + params.length, 0);
  head.writeInt32BE(196608, 4);
  s.write(Buffer.concat([head, params]));
  let buf = Buffer.alloc(0);
  let phase: "login" | "query" = "login";
  let start = 0;
  return await new Promise<Buffer>((resolve, reject) => {
    s.on("error", reject);
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length - start < 5) return;
        const type = String.fromCharCode(buf[start] as number);
        const len = buf.readInt32BE(start + 1);
        if (buf.length - start < len + 1) return;
        const next = start + len + 1;
        if (phase === "login" && type === "R" && buf.readInt32BE(start + 5) === 3) {
          const pw = Buffer.from(`${h.token}\0`);
          const m = Buffer.alloc(5);
          m.write("p");
          m.writeInt32BE(4 + pw.length, 1);
          s.write(Buffer.concat([m, pw]));
        } else if (phase === "login" && type === "Z") {
          phase = "query";
          buf = buf.subarray(next);
          start = 0;
          const q = Buffer.from(`${sql}\0`);
          const m = Buffer.alloc(5);
          m.write("Q");
          m.writeInt32BE(4 + q.length, 1);
          s.write(Buffer.concat([m, q]));
          continue;
        } else if (phase === "query" && type === "Z") {
          s.end();
          resolve(buf.subarray(0, next));
          return;
        } else if (type === "E" && phase === "login") reject(new Error(buf.toString("latin1", start)));
        start = next;
      }
    });
  });
}
