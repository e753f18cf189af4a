/**
 * Fuzzes the gateway's PostgreSQL front end over real TCP, with the real PostgreSQL 15 behind it (DESIGN.md
 * section 1, "bad input gets a clear error and costs nothing else").
 *
 * Each case opens one raw connection, brings it to a phase (nothing sent, SSLRequest, startup, logged in, inside
 * COPY FROM STDIN), sends a random mix of valid and malformed messages, and ends by closing abruptly, by
 * half-closing, or by a Sync + probe query. Per case: the gateway's answer is well-framed backend messages, and
 * the connection is closed once the client is gone. Over the whole run: the in-process gateway never throws
 * into the process, a concurrent pg session keeps answering, the heap comes back to where it was, no session
 * or target connection is left behind, and every fuzz statement that shows up in the target's own statement log
 * has an audit record that let it through (evidence before effect).
 *
 * Bounded in CI (FUZZ_SECONDS, default 45 s); `npm run fuzz` runs FUZZ_RUNS=100000 without a time limit.
 * FUZZ_SEED replays a run (the seed is printed on failure).
 */
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { services } from "../../support/services.js";
import { startHarness, statementLog, targetAdmin, type Harness } from "../postgres/harness.js";
import * as w from "../../fuzz/pg-wire.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 100_000);
const SECONDS = Number(process.env.FUZZ_SECONDS ?? (process.env.FUZZ_RUNS ? 0 : 45));
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined;
const RUN = randomUUID().slice(0, 8);
const APP = `fz-${RUN}`;
/** Replaced per message by a unique number of the same width, so length fields stay right. */
const PLACEHOLDER = "@@@@@@";
const MARKER = `fz-${RUN}-${PLACEHOLDER}`;

// gc() without changing vitest's config: the flag is honoured for functions created after it is set
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

let h: Harness;
let uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

beforeAll(async () => {
  const svc = services();
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
  // a trust login keeps each case cheap; guardrails keep the shared database safe from whatever gets through
  h = await startHarness({
    connections: `  - name: fuzz-db
    type: postgres
    target: { host: ${svc.GH_TEST_PG_HOST}, port: ${svc.GH_TEST_PG_PORT}, database: ${svc.GH_TEST_PG_DATABASE}, user: ${svc.GH_TEST_PG_TRUST_USER} }
    access: [group:ci]
    on_unparseable: allow
    guardrails:
      - deny: { statements: [drop, truncate, delete, update, merge, alter_table, alter_role, alter, create_role, create_function, create_index, grant, revoke, do, call, copy_program, copy_file, vacuum, lock, load, cluster, reindex, refresh, security_label, comment] }
`,
  });
});

afterAll(async () => {
  process.off("uncaughtException", onUncaught);
  process.off("unhandledRejection", onUncaught);
  await h?.stop();
});

let counter = 0;
function stamp(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  for (let at = out.indexOf(PLACEHOLDER); at >= 0; at = out.indexOf(PLACEHOLDER, at + PLACEHOLDER.length)) {
    out.write(String(++counter % 1_000_000).padStart(PLACEHOLDER.length, "0"), at, "latin1");
  }
  return out;
}

/** A raw client connection that keeps everything the gateway sent. */
class Raw {
  readonly socket: Socket;
  received = Buffer.alloc(0);
  closed = false;
  #waiters = new Set<() => void>();
  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.on("data", (d: Buffer) => {
      // bounded: a well-behaved gateway never sends a fuzz client more than a few result sets
      if (this.received.length < 4 * 1024 * 1024) this.received = Buffer.concat([this.received, d]);
      this.#wake();
    });
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => {
      this.closed = true;
      this.#wake();
    });
  }
  #wake(): void {
    for (const f of this.#waiters) f();
  }
  /** Resolves true once `done()` holds or the connection closed, false after `ms`. */
  until(done: () => boolean, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (done() || this.closed) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve(true);
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        resolve(false);
      }, ms);
      this.#waiters.add(check);
      check();
    });
  }
  types(from = 0): string[] {
    return w.readBackend(this.received.subarray(from)).messages.map((m) => m.type);
  }
}

async function open(): Promise<Raw> {
  const c = new Raw(h.port);
  await once(c.socket, "connect");
  return c;
}

/** Logs in to fuzz-db; in phase "copy" also enters COPY FROM STDIN. */
async function login(phase: "auth" | "copy"): Promise<Raw> {
  const c = await open();
  c.socket.write(w.startup({ user: "fz", database: "fuzz-db", application_name: APP }));
  await c.until(() => c.types().includes("R"), 5000);
  c.socket.write(w.password(h.token));
  const ready = await c.until(() => c.types().includes("Z"), 5000);
  if (!ready || c.closed) throw new Error(`fuzz login failed: ${JSON.stringify(c.types())}`);
  if (phase === "copy") {
    const at = c.received.length;
    c.socket.write(w.query("CREATE TEMP TABLE fz_t (a text)"));
    await c.until(() => c.types(at).includes("Z"), 5000);
    const at2 = c.received.length;
    c.socket.write(w.query(stamp(Buffer.from(`COPY fz_t FROM STDIN /* ${MARKER} */`))));
    await c.until(() => c.types(at2).includes("G"), 5000);
    if (!c.types(at2).includes("G")) {
      const errors = w.readBackend(c.received.subarray(at2)).messages.filter((m) => m.type === "E");
      throw new Error(`COPY FROM STDIN did not start: ${JSON.stringify(errors.map((m) => w.errorFields(m.body)))}`);
    }
  }
  return c;
}

type Ending = "destroy" | "fin" | "probe";
interface Case {
  phase: w.Phase;
  prelude: Buffer;
  messages: Buffer[];
  /** Write message by message (separate TCP segments, mostly) or all at once. */
  split: boolean;
  ending: Ending;
}

const messages = fc.array(w.fuzzMessage(MARKER, "will-be-replaced"), { maxLength: 8 });
const caseArb: fc.Arbitrary<Case> = fc.oneof(
  fc
    .record({
      phase: fc.constantFrom("raw" as const, "ssl" as const, "startup" as const),
      messages,
      split: fc.boolean(),
      ending: fc.constantFrom("destroy" as const, "fin" as const),
    })
    .chain((c) => w.prelude(c.phase).map((prelude) => ({ ...c, prelude }))),
  fc.record({
    phase: fc.constantFrom("auth" as const, "copy" as const),
    prelude: fc.constant(Buffer.alloc(0)),
    messages,
    split: fc.boolean(),
    ending: fc.constantFrom("destroy" as const, "fin" as const, "probe" as const),
  }),
);

/** Cases run in small concurrent batches: logins overlap, and the gateway sees interleaved bad connections. */
const PARALLEL = Number(process.env.FUZZ_PARALLEL ?? 8);
const batchArb = fc.array(caseArb, { minLength: 1, maxLength: PARALLEL });
const runBatch = async (batch: Case[]): Promise<void> => {
  const results = await Promise.allSettled(batch.map(runCase));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
};

/** The fuzzer's password messages carry a dummy; the real token is only known once the harness runs. */
function withToken(buf: Buffer): Buffer {
  const dummy = Buffer.from("will-be-replaced\0");
  const at = buf.indexOf(dummy);
  return at === 5 && buf[0] === 0x70 ? w.password(h.token) : buf;
}

let cases = 0;
const outcomes: Record<string, number> = {};

async function runCase(fz: Case): Promise<void> {
  cases++;
  const c = fz.phase === "auth" || fz.phase === "copy" ? await login(fz.phase) : await open();
  const from = fz.phase === "auth" || fz.phase === "copy" ? c.received.length : 0;
  const chunks = [fz.prelude, ...fz.messages.map((m) => stamp(withToken(m)))].filter((b) => b.length > 0);
  if (fz.split) for (const b of chunks) c.socket.write(b);
  else if (chunks.length) c.socket.write(Buffer.concat(chunks));

  if (fz.ending === "destroy") {
    // truncated, pipelined, whatever: the client vanishes; the run-wide checks find a leaked session
    c.socket.destroy();
    outcomes.destroy = (outcomes.destroy ?? 0) + 1;
    return;
  }
  if (fz.ending === "probe") {
    // [Sync, Query, Sync] gets a ReadyForQuery in every state a complete stream can leave (after an error in
    // extended-protocol COPY the server skips to the next Sync). Only a truncated message may leave it silent.
    const at = c.received.length;
    const probe = Buffer.concat([w.sync(), w.query(stamp(Buffer.from(`SELECT '${MARKER}' AS probe`))), w.sync()]);
    c.socket.write(probe);
    const framing = w.frameTyped(Buffer.concat(chunks));
    if (framing !== "truncated") {
      const answered = await c.until(() => c.types(at).includes("Z"), 5000);
      expect(answered, `a complete request stream (${framing}) gets an answer or a close`).toBe(true);
      const key = c.closed ? "probe:closed" : "probe:answered";
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    } else outcomes["probe:truncated"] = (outcomes["probe:truncated"] ?? 0) + 1;
  }
  c.socket.end();
  const closed = await c.until(() => false, 5000);
  expect(closed, "the gateway closes a connection whose client half-closed").toBe(true);

  let answer = c.received.subarray(from);
  if (fz.phase !== "auth" && fz.phase !== "copy") {
    // one-byte answers to leading SSLRequest/GSSENCRequest: 'S' then TLS (not ours to parse), or 'N'
    const sent = Buffer.concat(chunks);
    for (let i = 0; i + 8 <= sent.length && answer.length > 0; i += 8) {
      const code = sent.readInt32BE(i + 4);
      if (sent.readInt32BE(i) !== 8 || (code !== w.SSL_REQUEST && code !== w.GSSENC_REQUEST)) break;
      if (answer[0] === 0x53) return;
      if (answer[0] !== 0x4e) break; // an ErrorResponse instead is fine: parsed below
      answer = answer.subarray(1);
    }
  }
  const parsed = w.readBackend(answer);
  expect(parsed.bad, "the gateway only ever sends well-framed backend messages").toBeUndefined();
  expect(parsed.rest, "the last message was cut off").toBe(0);
  const key = `${fz.phase}:${parsed.messages.some((m) => m.type === "E") ? "error" : "no-error"}`;
  outcomes[key] = (outcomes[key] ?? 0) + 1;
}

async function allAudit(): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of h.gateway.store.iterateAudit({ fromSeq: 1 })) out.push(r);
  return out;
}

/** Polls `check` until it returns undefined (ok) or the time is up; returns the last complaint. */
async function eventually(check: () => Promise<string | undefined>, ms = 15_000): Promise<string | undefined> {
  const end = Date.now() + ms;
  let complaint = await check();
  while (complaint !== undefined && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    complaint = await check();
  }
  return complaint;
}

describe("postgres front end under fuzzed input", () => {
  it("answers a bad length after login with FATAL 08P01 and closes only that connection", async () => {
    const other = await h.client("app-db");
    for (const len of [-1, -0x80000000, 0, 3, 0x7fffffff, 0x04000001]) {
      const c = await login("auth");
      const from = c.received.length;
      c.socket.write(w.badLength(0x51, len, Buffer.from("SELECT 1")));
      expect(await c.until(() => false, 5000), `length ${len}: connection closed`).toBe(true);
      const errors = w
        .readBackend(c.received.subarray(from))
        .messages.filter((m) => m.type === "E")
        .map((m) => w.errorFields(m.body));
      expect(
        errors.map((e) => `${e.S}/${e.C}`),
        `length ${len}`,
      ).toEqual(["FATAL/08P01"]);
      expect((await other.query("select 2 as n")).rows).toEqual([{ n: 2 }]);
    }
    // before login: the startup packet's own length
    for (const len of [-1, 0, 7, 0x7fffffff, 0x00100001]) {
      const c = await open();
      c.socket.write(w.badLength(0, len, Buffer.alloc(8)).subarray(1));
      expect(await c.until(() => false, 5000)).toBe(true);
      const errors = w.readBackend(c.received).messages.filter((m) => m.type === "E");
      expect(
        errors.map((m) => w.errorFields(m.body).C),
        `startup length ${len}`,
      ).toEqual(["08P01"]);
    }
  });

  it(
    "survives random messages in every phase without crashing, leaking, or disturbing another session",
    async () => {
      uncaught = [];
      // a real client in a loop beside the fuzzer: its statements must all succeed
      let validOk = 0;
      const validErrors: string[] = [];
      const valid = new pg.Client({
        host: h.host,
        port: h.port,
        database: "app-db",
        user: "ci-bot",
        password: h.token,
      });
      valid.on("error", (err) => validErrors.push(`client error: ${String(err)}`));
      await valid.connect();
      let stop = false;
      const loop = (async () => {
        while (!stop) {
          try {
            const r = await valid.query(`SELECT 1 AS one /* ${APP}-valid */`);
            if (r.rows[0]?.one !== 1) validErrors.push(`unexpected ${JSON.stringify(r.rows)}`);
            else validOk++;
          } catch (err) {
            validErrors.push(String(err));
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      })();

      let heapBefore = 0;
      let rssBefore = 0;
      let seconds = 0;
      let result: fc.RunDetails<[Case[]]>;
      try {
        // warm up code paths and caches, then take the baseline
        await fc.assert(fc.asyncProperty(batchArb, runBatch), { numRuns: 20, seed: 1 });
        gc();
        heapBefore = process.memoryUsage().heapUsed;
        rssBefore = process.memoryUsage().rss;
        const started = Date.now();
        cases = 0;
        result = await fc.check(fc.asyncProperty(batchArb, runBatch), {
          numRuns: Math.ceil(RUNS / ((PARALLEL + 1) / 2)),
          ...(SEED !== undefined ? { seed: SEED } : {}),
          ...(SECONDS > 0 ? { interruptAfterTimeLimit: SECONDS * 1000 } : {}),
          markInterruptAsFailure: false,
        });
        seconds = (Date.now() - started) / 1000;
      } finally {
        stop = true;
        await loop;
        await valid.end().catch(() => undefined);
      }
      process.stderr.write(
        `pg-fuzz: ${cases} cases (${result.numRuns} batches) in ${seconds.toFixed(1)} s (seed ${result.seed}), ` +
          `valid session: ${validOk} queries; outcomes ${JSON.stringify(outcomes)}\n`,
      );
      if (result.failed) {
        const cause =
          result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
        throw new Error(`${fc.defaultReportMessage(result) ?? "fuzz property failed"}\n${cause}`);
      }
      expect(cases, "the bounded run did real work").toBeGreaterThanOrEqual(Math.min(RUNS, 300));

      expect(uncaught, "nothing reached uncaughtException / unhandledRejection").toEqual([]);
      expect(validErrors, "the concurrent valid session was unaffected").toEqual([]);
      expect(validOk).toBeGreaterThan(10);

      // no client-side session left open, no target connection left behind
      const leftover = await eventually(async () => {
        const records = await allAudit();
        const ended = new Set(records.filter((r) => r.type === "session.end").map((r) => r.session_id));
        const open = records.filter(
          (r) => r.type === "session.start" && r.connection === "fuzz-db" && !ended.has(r.session_id),
        );
        const detail = open.map((o) =>
          records
            .filter((r) => r.session_id === o.session_id)
            .map((r) => `${r.type}${r.data ? ` ${JSON.stringify(r.data).slice(0, 300)}` : ""}`),
        );
        return open.length
          ? `${open.length} fuzz session(s) without session.end: ${JSON.stringify(detail, null, 1)}`
          : undefined;
      });
      expect(leftover).toBeUndefined();
      const admin = await targetAdmin();
      try {
        const targetLeft = await eventually(async () => {
          const r = await admin.query<{ n: string }>(
            "select count(*) as n from pg_stat_activity where application_name = $1",
            [APP],
          );
          return r.rows[0]?.n === "0" ? undefined : `${r.rows[0]?.n} target backend(s) of fuzz sessions remain`;
        });
        expect(targetLeft).toBeUndefined();
      } finally {
        await admin.end();
      }

      // heap back to the baseline (allowing for caches that fill once); RSS loosely
      gc();
      const heapGrowth = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
      const rssGrowth = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
      process.stderr.write(`pg-fuzz: heap +${heapGrowth.toFixed(1)} MiB, rss +${rssGrowth.toFixed(1)} MiB\n`);
      expect(heapGrowth).toBeLessThan(64);
      expect(rssGrowth).toBeLessThan(300);

      // evidence before effect: every fuzz statement the target logged was let through by an audit record
      const records = await allAudit();
      const allowedText = records
        .filter((r) => r.type === "request" && r.decision !== "deny")
        .map((r) => String((r.data as { text?: unknown } | undefined)?.text ?? ""))
        .join("\n");
      const logged = new Set<string>();
      for (const line of await statementLog(`fz-${RUN}-`)) {
        for (const m of line.matchAll(new RegExp(`fz-${RUN}-\\d{6}`, "g"))) logged.add(m[0]);
      }
      const unaudited = [...logged].filter((m) => !allowedText.includes(m));
      process.stderr.write(`pg-fuzz: ${logged.size} fuzz statements reached the target's log\n`);
      expect(logged.size, "some fuzz statements reached the target").toBeGreaterThan(0);
      expect(unaudited, "statements in the target's log without an audit record").toEqual([]);
    },
    // bounded run plus login/settle time; the long run sets its own budget
    SECONDS > 0 ? (SECONDS + 90) * 1000 : 24 * 3600 * 1000,
  );
});
