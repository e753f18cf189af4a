/**
 * What PostgreSQL evidence may hold: bound parameters and result samples with detector hits masked, role
 * passwords replaced, and no binary COPY output on a connection whose content detectors could not scan it.
 * Secrets are written to the target directly (not through the gateway), so the only way one could reach the
 * evidence is through the path under test.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withLuhn } from "../../../src/core/masking/test-helpers.js";
import { services } from "../../support/services.js";
import { startHarness, type Harness } from "./harness.js";
import { untilSessionsSealed } from "../../support/sessions.js";

const id = randomUUID().slice(0, 8);
const table = `secrets_${id}`;
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

const CARD = withLuhn(`5500${id.replace(/\D/g, "").padEnd(11, "7").slice(0, 11)}`);
const JWT = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url({ sub: `user-${id}` })}.c2lnLSR7aWR9LXNpZ25hdHVyZQ`;
const JWT_PAYLOAD = JWT.split(".")[1] as string;
const AWS_KEY = `AKIA${id
  .toUpperCase()
  .replace(/[^A-Z0-9]/g, "Q")
  .padEnd(16, "Z")
  .slice(0, 16)}`;
const EMAIL = `person-${id}@example.com`;
const PASSWORD = `pw-${id}-Sekret`;
const SECRETS = [CARD, JWT_PAYLOAD, AWS_KEY, EMAIL];

let h: Harness;
let direct: pg.Client;

beforeAll(async () => {
  h = await startHarness({
    connections: `
  - name: detect-db
    type: postgres
    target: { TARGET }
    access: [group:ci]
    masking: { detectors: [credit_card, email, jwt, private_key, aws_key] }
  - name: detect-loose-db
    type: postgres
    target: { TARGET }
    access: [group:ci]
    masking: { detectors: [credit_card, email, jwt, private_key, aws_key] }
    on_unparseable: allow`,
  });
  const svc = services();
  direct = new pg.Client({
    host: svc.GH_TEST_PG_HOST,
    port: Number(svc.GH_TEST_PG_PORT),
    database: svc.GH_TEST_PG_DATABASE,
    user: svc.GH_TEST_PG_SCRAM_USER,
    password: svc.GH_TEST_PG_SCRAM_PASSWORD,
  });
  await direct.connect();
  await direct.query(`create table ${table} (id int primary key, note text)`);
  await direct.query(`insert into ${table} values (1, $1), (2, $2), (3, $3), (4, 'nothing to see')`, [
    `paid with ${CARD}`,
    `token ${JWT} key ${AWS_KEY}`,
    `mail ${EMAIL}`,
  ]);
});

afterAll(async () => {
  await direct?.query(`drop table if exists ${table}`).catch(() => undefined);
  await direct?.end().catch(() => undefined);
  await h?.stop();
});

/** Everything the evidence holds: the whole audit log and every session's recording, as JSON text. */
async function evidence(): Promise<string> {
  await untilSessionsSealed(h.gateway.store); // sessions that just closed end and seal
  await h.gateway.recorder.flush(); // recordings are written in batches every 200 ms: whatever is queued, now
  const store = h.gateway.store;
  let all = JSON.stringify(await store.readAudit({ fromSeq: 1, limit: 100_000 }));
  for (const s of await store.listSessions({})) {
    all += JSON.stringify(await store.readRecordingEvents(s.session_id, { fromSeq: 1, limit: 100_000 }));
  }
  return all;
}

/** The recording events of the sessions opened on a connection after `since` (ISO time). */
async function recordingOf(connection: string, since: string): Promise<{ kind: string; data?: unknown }[]> {
  await untilSessionsSealed(h.gateway.store);
  await h.gateway.recorder.flush();
  const store = h.gateway.store;
  const events: { kind: string; data?: unknown }[] = [];
  for (const s of await store.listSessions({})) {
    if (s.connection !== connection || s.started_at < since) continue;
    events.push(...(await store.readRecordingEvents(s.session_id, { fromSeq: 1, limit: 100_000 })));
  }
  return events;
}

describe("postgres evidence: sensitive values", () => {
  it("records bound parameters with secrets masked, on a connection without masking", async () => {
    const since = new Date().toISOString();
    const c = await h.client("app-db");
    // the result is a number: only the parameters carry the secrets
    const r = await c.query("select length($1::text) + length($2::text) + octet_length($3::bytea) as n", [
      `card ${CARD}`,
      JWT,
      Buffer.from(`aws_access_key_id=${AWS_KEY}`), // a Buffer is bound in binary format
    ]);
    expect(r.rows[0].n).toBeGreaterThan(0);
    await c.end();
    const binds = (await recordingOf("app-db", since)).filter((e) => e.kind === "bind");
    expect(binds).toHaveLength(1);
    const data = binds[0]?.data as { params: string[]; params_masked: number };
    expect(data.params[0]).toBe(`card ${"*".repeat(CARD.length - 4)}${CARD.slice(-4)}`);
    expect(data.params[1]).toMatch(/^eyJ[\w-]+\.\*{8}\.\*{8}$/);
    expect(data.params[2]).toBe(`\\x${Buffer.from("aws_access_key_id=AKIA****************").toString("hex")}`);
    expect(data.params_masked).toBe(3);
    const all = await evidence();
    for (const secret of [CARD, JWT_PAYLOAD, AWS_KEY]) expect(all).not.toContain(secret);
  });

  it("adds the connection's own detectors (email) to bound parameters", async () => {
    const since = new Date().toISOString();
    const c = await h.client("detect-db");
    await c.query("select length($1::text) as n", [`write to ${EMAIL}`]);
    await c.end();
    const bind = (await recordingOf("detect-db", since)).find((e) => e.kind === "bind");
    expect(bind?.data).toMatchObject({ params: ["write to ****@****"], params_masked: 1 });
    expect(await evidence()).not.toContain(EMAIL);
  });

  it("never records a detector hit of a result row: samples hold what the client saw", async () => {
    const since = new Date().toISOString();
    const c = await h.client("detect-db");
    const simple = await c.query(`select note from ${table} order by id`);
    const extended = await c.query({ text: `select id, note from ${table} where id <= $1 order by id`, values: [4] });
    for (const rows of [simple.rows, extended.rows]) {
      const text = JSON.stringify(rows);
      for (const secret of SECRETS) expect(text).not.toContain(secret);
      expect(rows[3].note).toBe("nothing to see");
    }
    expect((await h.psql(`select note from ${table} order by id`, { database: "detect-db" })).stdout).toContain(
      "****@****",
    );
    await c.end();
    const results = (await recordingOf("detect-db", since)).filter((e) => e.kind === "result");
    const samples = JSON.stringify(results.map((e) => (e.data as { sample?: unknown }).sample));
    expect(samples).toContain(`paid with ${"*".repeat(CARD.length - 4)}${CARD.slice(-4)}`);
    expect(samples).toContain("****@****");
    expect(samples).toContain("AKIA****************");
    expect(results.some((e) => ((e.data as { mask_hits?: number }).mask_hits ?? 0) >= 3)).toBe(true);
    const all = await evidence();
    for (const secret of SECRETS) expect(all).not.toContain(secret);
  });

  it("keeps role passwords out of the audit log and the recording (simple and extended protocol)", async () => {
    const role = `gh_nobody_${id}`;
    // the role does not exist and the login may not alter roles anyway: the target refuses, but the request
    // and its text are evidence all the same
    const simple = await h.psql(`alter role ${role} with password '${PASSWORD}'`);
    expect(simple.stderr).toMatch(/does not exist|permission denied/);
    const c = await h.client("app-db");
    const err = await c
      .query({ text: `create role ${role} login password '${PASSWORD}-2'`, queryMode: "extended" } as pg.QueryConfig)
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    await c.end();
    const all = await evidence();
    expect(all).not.toContain(PASSWORD);
    // the statements themselves are there, with the password replaced
    const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
    const texts = audit
      .map((r) => (r.data as { text?: string } | undefined)?.text ?? "")
      .filter((t) => t.includes(role));
    expect(texts.some((t) => /^alter role/i.test(t))).toBe(true);
    expect(texts.some((t) => /^create role/i.test(t))).toBe(true);
  });

  it("keeps user mapping, subscription and dblink passwords out of evidence, also of a text that does not parse", async () => {
    const name = `gh_nosuch_${id}`;
    // none of these objects or functions exist: the target refuses, the texts are evidence all the same
    for (const sql of [
      `create user mapping for current_user server ${name} options (user 'u', password '${PASSWORD}-um')`,
      `alter subscription ${name} connection 'host=127.0.0.1 port=1 password=${PASSWORD}-sub'`,
      `select ${name}.dblink_connect('c', 'postgresql://u:${PASSWORD}-dbl@127.0.0.1:1/d')`,
      // a syntax error: refused by on_unparseable, recorded with its redacted text and error
      `create subscription ${name} connection 'host=h password=${PASSWORD}-bad' publicaton p`,
    ]) {
      const r = await h.psql(sql);
      expect(r.code, sql).not.toBe(0);
    }
    const c = await h.client("app-db");
    const err = await c
      .query({
        text: `alter server ${name} options (add password '${PASSWORD}-srv')`,
        queryMode: "extended",
      } as pg.QueryConfig)
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    await c.end();
    const all = await evidence();
    expect(all).not.toContain(PASSWORD);
    const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
    const texts = audit
      .map((r) => (r.data as { text?: string } | undefined)?.text ?? "")
      .filter((t) => t.includes(name));
    expect(texts).toEqual(
      expect.arrayContaining([
        `create user mapping for current_user server ${name} options (user 'u', password '********')`,
        `alter subscription ${name} connection '********'`,
        `select ${name}.dblink_connect('c', '********')`,
        `create subscription ${name} connection '********' publicaton p`,
        `alter server ${name} options (add password '********')`,
      ]),
    );
  });
});

describe("postgres evidence: binary COPY OUT where detectors run", () => {
  const blocked = /gatehouse: blocked by connections\[\d+\]\.masking \(binary COPY \.\.\. TO STDOUT cannot be scanned/;

  it("refuses binary COPY TO STDOUT with 42501, in every plain spelling, and the session goes on", async () => {
    for (const sql of [
      `copy (select note from ${table}) to stdout with (format binary)`,
      `copy ${table} to stdout (format 'binary')`,
      `copy binary ${table} to stdout`,
      `copy ${table} to stdout with binary`,
    ]) {
      const r = await h.psql(sql, { database: "detect-db", args: ["-v", "VERBOSITY=verbose"] });
      expect(r.code, sql).not.toBe(0);
      expect(r.stderr, sql).toMatch(/42501/);
      expect(r.stderr, sql).toMatch(blocked);
      expect(r.stdout, sql).not.toContain("PGCOPY");
    }
    // psql's \copy, and a session that goes on after the refusal
    const both = await h.psql("", {
      database: "detect-db",
      args: ["-v", "ON_ERROR_STOP=0"],
      input: `\\copy (select note from ${table} order by id) to stdout with (format binary)\nselect 'still here';\n`,
    });
    expect(both.stderr).toMatch(blocked);
    expect(both.stdout).toBe("still here");
    const audit = await h.gateway.store.tailAudit(20);
    const refusals = audit.filter(
      (r) =>
        r.type === "request.blocked" &&
        /\.masking$/.test(r.rule ?? "") &&
        JSON.stringify(r.data).includes("binary COPY"),
    );
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(refusals.at(-1)?.data).toMatchObject({ protocol: "postgres" });
  });

  it("refuses the escaped spellings before execution too: the parser resolves them", async () => {
    for (const sql of [
      `copy (select note from ${table}) to stdout with (format E'\\x62inary')`,
      `copy ${table} to stdout (format U&'\\0062inary')`,
      `copy ${table} to stdout (format $$binary$$)`,
    ]) {
      const r = await h.psql(sql, { database: "detect-db", args: ["-v", "VERBOSITY=verbose"] });
      expect(r.code, sql).not.toBe(0);
      expect(r.stderr, sql).toMatch(/42501/);
      expect(r.stderr, sql).toMatch(blocked);
      expect(r.stdout, sql).not.toContain("PGCOPY");
    }
    // a format the gateway cannot read is refused as well (the server would reject it anyway)
    const upper = await h.psql(`copy ${table} to stdout (format 'BINARY')`, { database: "detect-db" });
    expect(upper.stderr).toMatch(/blocked by connections\[\d+\]\.masking \(COPY \.\.\. TO STDOUT in a format/);
  });

  it("lets a text COPY whose column is named binary through, scanned", async () => {
    const r = await h.psql(`copy (select note as binary from ${table} order by id) to stdout`, {
      database: "detect-db",
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")).toHaveLength(4);
    expect(r.stdout).toContain("nothing to see");
    for (const secret of SECRETS) expect(r.stdout).not.toContain(secret);
  });

  it("cuts the session off when the server reads binary where the gateway read text", async () => {
    // with standard_conforming_strings off (allowed here: on_unparseable: allow), the server reads 'a\') ... --'
    // as one string and then FORMAT binary; the gateway reads 'a\' and a comment, so a text COPY
    const since = new Date().toISOString();
    const copy = `copy (select note from ${table} where note <> 'a\\') to stdout (format text) --') to stdout (format binary);`;
    const r = await h.psql("", {
      database: "detect-loose-db",
      args: ["-v", "ON_ERROR_STOP=0"],
      input: `set standard_conforming_strings = off;\n${copy}\nselect 'not reached';\n`,
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(blocked);
    expect(r.stdout).not.toContain("PGCOPY");
    expect(r.stdout).not.toContain("not reached");
    for (const secret of SECRETS) expect(r.stdout).not.toContain(secret);
    // the refusal is written before the session ends; the session ends after psql is gone
    await untilSessionsSealed(h.gateway.store);
    const audit = await h.gateway.store.tailAudit(10);
    const cut = audit.filter(
      (a) => a.type === "request.blocked" && a.time >= since && (a.data as { stage?: string }).stage === "output",
    );
    expect(cut).toHaveLength(1);
    // a new session works
    expect((await h.psql("select 1", { database: "detect-loose-db" })).stdout).toBe("1");
  });

  it("still scans text and CSV COPY, and leaves binary COPY alone where no detector runs", async () => {
    const csv = await h.psql(`copy (select note from ${table} order by id) to stdout with (format csv)`, {
      database: "detect-db",
    });
    expect(csv.stderr).toBe("");
    expect(csv.stdout.split("\n")).toHaveLength(4);
    for (const secret of SECRETS) expect(csv.stdout).not.toContain(secret);
    const plain = await h.psql(`copy (select 1) to stdout with (format binary)`, { database: "app-db" });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain("PGCOPY");
  });
});
