import { readRecording } from "../../../src/core/evidence/recorder.js";
import type { RecordingEvent } from "../../../src/core/evidence/records.js";
import { randomUUID } from "node:crypto";
import { connect, createServer, type Socket } from "node:net";
import { once } from "node:events";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, targetAdmin, type Harness } from "./harness.js";
import { services } from "../../support/services.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h?.stop());

/** Raw bytes to the gateway; resolves with everything it answered once it closes the connection. */
async function raw(bytes: Buffer, timeoutMs = 3000): Promise<Buffer> {
  const s = connect(h.port, h.host);
  const chunks: Buffer[] = [];
  s.on("data", (d: Buffer) => chunks.push(d));
  await once(s, "connect");
  s.write(bytes);
  const timer = setTimeout(() => s.destroy(), timeoutMs);
  await once(s, "close");
  clearTimeout(timer);
  return Buffer.concat(chunks);
}

function startup(params: Record<string, string>): Buffer {
  const body = Buffer.concat([
    ...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.from(`${v}\0`)]),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

describe("postgres gateway: login", () => {
  it("refuses a bad token with 28P01 and records auth.failed", async () => {
    const r = await h.psql("select 1", { token: "not-a-token" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/password authentication failed/);
    const c = await h.client(undefined, { password: "nope" }).catch((e) => e);
    expect(c.code).toBe("28P01");
    const events = await h.gateway.store.readAudit({ fromSeq: 1, limit: 1000 });
    expect(events.some((e) => e.type === "auth.failed")).toBe(true);
    expect(JSON.stringify(events)).not.toContain("not-a-token");
  });

  it("refuses an unknown connection with 3D000 and no access with 42501", async () => {
    const unknown = await h.client("no-such-db").catch((e) => e);
    expect(unknown.code).toBe("3D000");
    const stranger = await h.client("app-db", { password: h.strangerToken }).catch((e) => e);
    expect(stranger.code).toBe("42501");
  });

  it("logs in to md5 and trust targets, and conn/otherdb picks another database", async () => {
    expect((await h.psql("select current_user", { database: "md5-db" })).stdout).toBe(services().GH_TEST_PG_MD5_USER);
    expect((await h.psql("select current_user", { database: "trust-db" })).stdout).toBe(
      services().GH_TEST_PG_TRUST_USER,
    );
    expect((await h.psql("select current_database()", { database: "app-db/postgres" })).stdout).toBe("postgres");
  });

  it("speaks TLS when asked (sslmode=require)", async () => {
    const r = await h.psql("select ssl from pg_stat_ssl where pid = pg_backend_pid()", { sslmode: "require" });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("f"); // client<->gateway is TLS; gateway<->target is plain in this config
    const c = await h.client(undefined, { ssl: { rejectUnauthorized: false } });
    expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  });

  it("speaks TLS to the target per target.tls.mode (the test server has ssl=off)", async () => {
    const t = await startHarness({
      connections: `
  - name: tls-prefer
    type: postgres
    target: { TARGET, tls: { mode: prefer } }
    access: [group:ci]
  - name: tls-require
    type: postgres
    target: { TARGET, tls: { mode: require } }
    access: [group:ci]`,
    });
    try {
      expect((await t.psql("select 1", { database: "tls-prefer" })).stdout).toBe("1");
      const err = await t.client("tls-require").catch((e) => e);
      expect(err.code).toBe("08006");
      expect(err.message).toMatch(/does not support TLS \(tls.mode: require\)/);
    } finally {
      await t.stop();
    }
  });

  it("never shows the target password to the client, in logs or in evidence", async () => {
    const password = services().GH_TEST_PG_SCRAM_PASSWORD;
    // a transparent proxy in front of the gateway captures every byte the client receives
    const seen: Buffer[] = [];
    const proxy = createServer((client: Socket) => {
      const up = connect(h.port, h.host);
      client.pipe(up);
      up.on("data", (d: Buffer) => seen.push(d));
      up.pipe(client);
      client.on("error", () => up.destroy());
      up.on("error", () => client.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const port = (proxy.address() as { port: number }).port;
    const { exec } = await import("./harness.js");
    await exec(
      "psql",
      ["-X", "-At", "-c", "select 1; show password_encryption", `host=127.0.0.1 port=${port} dbname=app-db user=x`],
      {
        env: { ...process.env, PGPASSWORD: h.token },
      },
    );
    proxy.close();
    await h.gateway.recorder.flush(); // recordings are written in batches: what is still queued would be missed
    expect(Buffer.concat(seen).length).toBeGreaterThan(0);
    expect(Buffer.concat(seen).includes(password)).toBe(false);
    const audit = JSON.stringify(await h.gateway.store.readAudit({ fromSeq: 1, limit: 10000 }));
    expect(audit).not.toContain(password);
    expect(audit).not.toContain(h.token);
    for (const s of await h.gateway.store.listSessions({})) {
      const events = JSON.stringify(
        await h.gateway.store.readRecordingEvents(s.session_id, { fromSeq: 1, limit: 10000 }),
      );
      expect(events).not.toContain(password);
    }
    expect(h.logs.join("\n")).not.toContain(password);
  });
});

describe("postgres gateway: protocol", () => {
  it("answers garbage and a huge length with a FATAL 08P01 and closes only that connection", async () => {
    const c = await h.client();
    const garbage = await raw(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect(garbage.toString("latin1")).toMatch(/08P01/);
    const huge = Buffer.alloc(8);
    huge.writeInt32BE(0x7ffffff0, 0);
    huge.writeInt32BE(196608, 4);
    expect((await raw(huge)).toString("latin1")).toMatch(/08P01/);
    // after login: a typed message claiming 1 GiB
    const afterLogin = Buffer.concat([startup({ user: "x", database: "app-db" })]);
    const s = connect(h.port, h.host);
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => {
      got.push(d);
      const all = Buffer.concat(got);
      if (all.length === 9 && all[0] === 0x52)
        s.write(Buffer.concat([Buffer.from("p"), len(h.token.length + 5), Buffer.from(`${h.token}\0`)]));
      if (all.includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])))
        s.write(Buffer.concat([Buffer.from("Q"), len(0x40000000)]));
    });
    await once(s, "connect");
    s.write(afterLogin);
    await once(s, "close");
    expect(Buffer.concat(got).toString("latin1")).toMatch(/08P01.*exceeds the limit/s);
    expect((await c.query("select 'still fine' as ok")).rows).toEqual([{ ok: "still fine" }]);
  });

  it("answers GSSENCRequest with N, and keeps pipelined requests in order around a refusal", async () => {
    const blocked = await startHarness({ appDb: "guardrails:\n  - deny: { statements: [drop] }" });
    try {
      const s = connect(blocked.port, blocked.host);
      await once(s, "connect");
      const gss = Buffer.alloc(8);
      gss.writeInt32BE(8, 0);
      gss.writeInt32BE(80877104, 4);
      const chunks: Buffer[] = [];
      s.on("data", (d: Buffer) => chunks.push(d));
      // polls rather than sleeps: a loaded machine answers late, and a late login answer would land among the
      // answers checked below
      const received = async (done: (got: Buffer) => boolean) => {
        for (let i = 0; i < 100 && !done(Buffer.concat(chunks)); i++) await new Promise((r) => setTimeout(r, 50));
        return Buffer.concat(chunks);
      };
      s.write(gss);
      expect((await received((b) => b.length > 0)).toString()).toBe("N");
      chunks.length = 0;
      s.write(startup({ user: "x", database: "app-db" }));
      await received((b) => b.includes("R"));
      s.write(Buffer.concat([Buffer.from("p"), len(blocked.token.length + 5), Buffer.from(`${blocked.token}\0`)]));
      // logged in: ReadyForQuery, idle
      await received((b) => b.includes(Buffer.from("Z\0\0\0\x05I")));
      chunks.length = 0;
      const q = (sql: string) => Buffer.concat([Buffer.from("Q"), len(sql.length + 5), Buffer.from(`${sql}\0`)]);
      // one write: allowed, refused, allowed; nothing may overtake the refused request or reorder answers
      // a fast-path FunctionCall of pg_backend_pid() (oid 2026): no SQL to analyze, so on_unparseable (deny) decides
      const fn = Buffer.from([0x46, 0, 0, 0, 14, 0, 0, 0x07, 0xea, 0, 0, 0, 0, 0, 0]);
      s.write(
        Buffer.concat([q("select 'first'"), q("drop table nope"), q("select 'third'"), fn, Buffer.from("X\0\0\0\x04")]),
      );
      await once(s, "close");
      const text = Buffer.concat(chunks).toString("latin1");
      const first = text.indexOf("first");
      const refused = text.indexOf("42501");
      const third = text.indexOf("third");
      expect(first).toBeGreaterThan(-1);
      expect(refused).toBeGreaterThan(first);
      expect(third).toBeGreaterThan(refused);
      expect(text.indexOf("42501", third)).toBeGreaterThan(third);
      expect(text).toContain("function call");
      expect(text.split(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]).toString("latin1")).length - 1).toBe(4);
    } finally {
      await blocked.stop();
    }
  });

  it("refuses bytes pipelined after SSLRequest before the TLS handshake (CVE-2021-23214)", async () => {
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    // one write: SSLRequest and a plaintext StartupMessage an attacker in the middle could have added
    const answer = await raw(Buffer.concat([ssl, startup({ user: "x", database: "app-db" })]));
    // not 'S' (which would start TLS over the injected bytes) and no login: a FATAL 08P01, then the close
    expect(answer[0]).toBe(0x45 /* E */);
    expect(answer.toString("latin1")).toMatch(/08P01.*unencrypted data after SSL request/s);
    expect(answer.includes(Buffer.from("R\0\0\0\x08"))).toBe(false);
  });

  it("requires TLS when configured (require: always) with 28000", async () => {
    const strict = await startHarness({ top: "postgres: { tls: { require: always } }" });
    try {
      const plain = await strict.psql("select 1");
      expect(plain.code).not.toBe(0);
      expect(plain.stderr).toMatch(/requires TLS/);
      expect((await strict.psql("select 1", { sslmode: "require" })).stdout).toBe("1");
    } finally {
      await strict.stop();
    }
  });

  it("keeps the transaction semantics of a refusal: BEGIN; blocked; ROLLBACK", async () => {
    const blocked = await startHarness({ appDb: "guardrails:\n  - deny: { statements: [drop] }" });
    try {
      const c = await blocked.client();
      await c.query("begin");
      const err = await c.query("drop table if exists x").catch((e) => e);
      expect(err.code).toBe("42501");
      const aborted = await c.query("select 1").catch((e) => e);
      expect(aborted.code).toBe("25P02"); // in failed transaction, as after any failed statement
      await c.query("rollback");
      expect((await c.query("select 2 as n")).rows).toEqual([{ n: 2 }]);
      // and outside a transaction the session just goes on
      expect((await c.query("drop table if exists x").catch((e) => e)).code).toBe("42501");
      expect((await c.query("select 3 as n")).rows).toEqual([{ n: 3 }]);
      const r = await blocked.psql("", {
        input: "begin;\ndrop table t;\nrollback;\nselect 'after';\n",
        args: ["-v", "ON_ERROR_STOP=0"],
      });
      expect(r.stdout).toContain("after");
      expect(r.stderr).toMatch(/blocked by connections\[0\]\.guardrails\[0\]/);
    } finally {
      await blocked.stop();
    }
  });

  it("cancels a running query through the gateway (pg_sleep cancelled, 57014) and records the cancel", async () => {
    const c = await h.client();
    const marker = `cancel_${randomUUID().slice(0, 8)}`;
    const started = Date.now();
    const running = c.query(`select pg_sleep(30) as ${marker}`).catch((e) => e);
    const pid = (c as unknown as { processID: number }).processID;
    const secret = (c as unknown as { secretKey: number }).secretKey;
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(pid, 8);
    cancel.writeInt32BE(secret, 12);
    // a cancel that arrives before the query runs cancels nothing: send it once the target runs it
    await untilRunning(marker);
    await raw(cancel);
    const err = await running;
    expect(err.code).toBe("57014");
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await c.query("select 1 as n")).rows).toEqual([{ n: 1 }]);
    // the session's recording says the query was cancelled, between the request and the next one
    await h.gateway.recorder.flush(); // recordings are written in batches: whatever is queued, now
    const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
    const request = audit.find((a) => a.type === "request" && JSON.stringify(a.data).includes(marker));
    // as readers see them: request events show the text of the audit record they refer to
    const events: RecordingEvent[] = [];
    for await (const e of readRecording(h.gateway.store, String(request?.session_id))) events.push(e);
    const kinds = events.map((e) => (e.kind === "request" ? `request ${JSON.stringify(e.data)}` : e.kind));
    const at = kinds.findIndex((k) => k === "cancel");
    expect(kinds.filter((k) => k === "cancel")).toHaveLength(1);
    expect(kinds.findIndex((k) => k.includes(marker))).toBeLessThan(at);
    expect(kinds.findIndex((k) => k.includes("select 1 as n"))).toBeGreaterThan(at);
  });

  it("cancels psql's query on SIGINT", async () => {
    const marker = `sigint_${randomUUID().slice(0, 8)}`;
    const child = spawn(
      "psql",
      [
        "-X",
        "-At",
        "-c",
        `select pg_sleep(30) as ${marker}`,
        `host=${h.host} port=${h.port} dbname=app-db user=ci-bot sslmode=disable`,
      ],
      {
        env: { ...process.env, PGPASSWORD: h.token },
      },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const closed = once(child, "close");
    await untilRunning(marker);
    const started = Date.now();
    child.kill("SIGINT");
    await closed;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(stderr).toMatch(/canceling statement due to user request/);
  });

  it("copies in and out with psql \\copy", async () => {
    const table = `copy_${randomUUID().slice(0, 8)}`;
    const file = join(h.dir, "in.csv");
    await writeFile(file, Array.from({ length: 1000 }, (_, i) => `${i},name ${i}`).join("\n") + "\n");
    expect((await h.psql(`create table ${table} (id int, name text)`)).stderr).toBe("");
    const copyIn = await h.psql(`\\copy ${table} from '${file}' with (format csv)`);
    expect(copyIn.stderr).toBe("");
    expect(copyIn.stdout).toBe("COPY 1000");
    const out = join(h.dir, "out.csv");
    const copyOut = await h.psql(`\\copy (select * from ${table} order by id) to '${out}' with (format csv)`);
    expect(copyOut.stdout).toBe("COPY 1000");
    expect(await readFile(out, "utf8")).toBe(await readFile(file, "utf8"));
    await h.psql(`drop table ${table}`);
  });

  it("streams a 100k-row result", async () => {
    const c = await h.client();
    const r = await c.query("select g, md5(g::text) as h from generate_series(1, 100000) g");
    expect(r.rows.length).toBe(100000);
    expect(r.rows[99999]).toEqual({ g: 100000, h: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const psql = await h.psql("select count(*) from (select g from generate_series(1, 100000) g) s");
    expect(psql.stdout).toBe("100000");
  });

  it("supports named statements and portals (pg prepared statements, row limits)", async () => {
    const c = await h.client();
    for (const n of [1, 2, 3]) {
      const r = await c.query({ name: "twice", text: "select $1::int * 2 as v", values: [n] });
      expect(r.rows).toEqual([{ v: n * 2 }]);
    }
    const bad = await c.query({ name: "broken", text: "select nope from nowhere" }).catch((e) => e);
    expect(bad.code).toBe("42P01");
    expect((await c.query("select 5 as n")).rows).toEqual([{ n: 5 }]);
  });
});

/** Waits until the target runs a statement containing `marker` (seen as the superuser, in pg_stat_activity). */
async function untilRunning(marker: string): Promise<void> {
  const admin = await targetAdmin();
  try {
    for (let i = 0; i < 400; i++) {
      // the marker travels as a parameter, so this query's own text never matches
      const r = await admin.query(
        "select 1 from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() and query like $1",
        [`%${marker}%`],
      );
      if (r.rowCount) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`the target never ran the statement marked ${marker}`);
  } finally {
    await admin.end();
  }
}

function len(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
}
