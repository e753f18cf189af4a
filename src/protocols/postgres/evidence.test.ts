import { generateKeyPairSync } from "node:crypto";
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { readRecording, SessionRecorder } from "../../core/evidence/recorder.js";
import type { RecordingEvent } from "../../core/evidence/records.js";
import { PostgresSqlAnalyzer } from "../../core/inspect/postgres-sql/index.js";
import { b64url, withLuhn } from "../../core/masking/test-helpers.js";
import type { PostgresConnectionConfig } from "../../core/policy/schema.js";
import type { AdapterRefusal, GatedSession, GateRequest, RequestEvidence } from "../../core/session/gate.js";
import { openStore } from "../../core/store/open.js";
import type { Store } from "../../core/store/types.js";
import { BackendRelay, type ResultSummary } from "./backend.js";
import { FrontendPipeline } from "./frontend.js";
import type { SqlAnalyzerLike } from "./sql-reading.js";
import { ABORT_SQL } from "./refusals.js";
import { paramMaskerFor, readBind } from "./params.js";
import type { MaskerLike } from "./result-mask.js";
import { message, parse, query, readyForQuery } from "./wire.js";
import { TargetLexerState } from "./lexer-state.js";

const CARD = withLuhn("411111111111111"); // 4111111111111111
const JWT = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url({ sub: "alice", role: "admin" })}.c2lnbmF0dXJlLXNpZw`;
const PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
const AWS_KEY = "AKIAIOSFODNN7EXAMPLE";

const connection = (masking?: PostgresConnectionConfig["masking"]) =>
  ({ name: "db", type: "postgres", ...(masking ? { masking } : {}) }) as unknown as PostgresConnectionConfig;

/** A Bind message: `formats` per parameter (or one for all), values as text or bytes, null for SQL NULL. */
function bind(values: (string | Buffer | null)[], formats: number[] = [], portal = "", statement = ""): Buffer {
  const parts: Buffer[] = [Buffer.from(`${portal}\0${statement}\0`)];
  const n = Buffer.alloc(2 + 2 * formats.length);
  n.writeInt16BE(formats.length, 0);
  formats.forEach((f, i) => n.writeInt16BE(f, 2 + 2 * i));
  parts.push(n);
  const count = Buffer.alloc(2);
  count.writeInt16BE(values.length, 0);
  parts.push(count);
  for (const v of values) {
    const len = Buffer.alloc(4);
    if (v === null) {
      len.writeInt32BE(-1, 0);
      parts.push(len);
      continue;
    }
    const b = typeof v === "string" ? Buffer.from(v) : v;
    len.writeInt32BE(b.length, 0);
    parts.push(len, b);
  }
  parts.push(Buffer.from([0, 0])); // no result formats
  return message("B", Buffer.concat(parts));
}

const frame = (raw: Buffer) => ({ type: String.fromCharCode(raw[0] as number), raw });

describe("bound parameters in the recording", () => {
  it("masks secrets with the default detectors when the connection has no masking, and keeps clean values", () => {
    const masker = paramMaskerFor(connection());
    const r = readBind(
      frame(bind([`card ${CARD}`, JWT, PRIVATE_KEY, `key=${AWS_KEY}`, "bob@example.com", "42", null])),
      masker,
    );
    const shown = JSON.stringify(r.params);
    for (const secret of [CARD, JWT.split(".")[1], "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", AWS_KEY]) {
      expect(shown).not.toContain(secret);
    }
    expect(r.params[0]).toBe("card ************1111");
    expect(r.params[1]).toMatch(/^eyJ[^.]+\.\*{8}\.\*{8}$/);
    // email is personal data, not a secret: only a connection that asks for it masks it
    expect(r.params.slice(4)).toEqual(["bob@example.com", "42", null]);
    expect(r).toMatchObject({ total: 7, masked: 4 });
    expect(readBind(frame(bind(["1", "hello"])), masker)).toMatchObject({ params: ["1", "hello"], masked: 0 });
  });

  it("adds the connection's own detectors", () => {
    const masker = paramMaskerFor(connection({ detectors: ["email"] }));
    expect(readBind(frame(bind(["bob@example.com", CARD])), masker).params).toEqual(["****@****", "************1111"]);
    // compiled once per connection config
    const c = connection();
    expect(paramMaskerFor(c)).toBe(paramMaskerFor(c));
  });

  it("scans binary values as bytes and long values before cutting them", () => {
    const masker = paramMaskerFor(connection());
    const binary = readBind(frame(bind([Buffer.from(`x ${CARD} y`), Buffer.from([0, 1, 2])], [1])), masker);
    expect(binary.params[0]).toBe(`\\x${Buffer.from("x ************1111 y").toString("hex")}`);
    expect(binary.params[1]).toBe("\\x000102");
    // a card straddling the 1 KiB cut is masked as a whole, not left half visible
    const long = `${"a ".repeat(508)}${CARD} ${"b".repeat(3000)}`;
    const r = readBind(frame(bind([long])), masker);
    expect(r.params[0]).toMatch(/^(a )+\*+… \(\d+ bytes\)$/);
    expect(r.params[0]).not.toContain("4111");
    expect(r.bytes).toBe(Buffer.byteLength(long));
    // mixed per-parameter formats
    const mixed = readBind(frame(bind([CARD, Buffer.from(CARD)], [0, 1])), masker);
    expect(mixed.params).toEqual(["************1111", `\\x${Buffer.from("************1111").toString("hex")}`]);
  });
});

// ------------------------------------------------------------------ fakes

class FakeSocket extends EventEmitter {
  written: Buffer[] = [];
  paused = false;
  pauses = 0;
  onResume: (() => void) | undefined;
  write(b: Buffer): boolean {
    this.written.push(Buffer.from(b));
    return true;
  }
  cork(): void {}
  uncork(): void {}
  pause(): this {
    if (!this.paused) this.pauses++;
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    this.onResume?.();
    return this;
  }
  end(): this {
    return this;
  }
  destroy(): this {
    return this;
  }
  get bytes(): Buffer {
    return Buffer.concat(this.written);
  }
}
const asSocket = (s: FakeSocket) => s as unknown as Socket;

function rowDescription(name: string): Buffer {
  const head = Buffer.alloc(2);
  head.writeInt16BE(1, 0);
  const field = Buffer.alloc(18);
  field.writeInt32BE(0, 0); // table oid
  field.writeInt16BE(0, 4); // attnum
  field.writeInt32BE(25, 6); // text
  field.writeInt16BE(-1, 10);
  field.writeInt32BE(-1, 12);
  field.writeInt16BE(0, 16); // text format
  return message("T", Buffer.concat([head, Buffer.from(`${name}\0`), field]));
}

function dataRow(value: string): Buffer {
  const v = Buffer.from(value);
  const b = Buffer.alloc(6);
  b.writeInt16BE(1, 0);
  b.writeInt32BE(v.length, 2);
  return message("D", Buffer.concat([b, v]));
}

const commandComplete = (tag: string) => message("C", Buffer.from(`${tag}\0`));

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A real store whose recording writes take `delayMs` each: a slow disk. */
async function slowStore(delayMs: number): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-pg-evidence-"));
  dirs.push(dir);
  const inner = await openStore({ dataDir: dir });
  stores.push(inner);
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "writeRecording") {
        return async (w: Parameters<Store["writeRecording"]>[0]) => {
          await new Promise((r) => setTimeout(r, delayMs));
          return target.writeRecording(w);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function collect(it: AsyncIterable<RecordingEvent>): Promise<RecordingEvent[]> {
  const out: RecordingEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe("recorder back-pressure", () => {
  it("records every result of a long pipeline under a tiny high-water mark and a slow store", async () => {
    const store = await slowStore(15);
    const recorder = new SessionRecorder(store, {
      signingKey: generateKeyPairSync("ed25519"),
      highWaterBytes: 2048,
      maxBufferedBytes: 8192, // ~40 result events: far fewer than the pipeline produces
      flushIntervalMs: 5,
    });
    const recording = await recorder.start({ sessionId: "bp-relay", connection: "db", protocol: "postgres" });
    const client = new FakeSocket();
    const target = new FakeSocket();
    let dropped = 0;
    let recorded = 0;
    const relay = new BackendRelay({
      client: asSocket(client),
      target: asSocket(target),
      sampleRows: 1,
      // what relayed-session.ts does
      onResult: (summary: ResultSummary) => {
        try {
          recorded++;
          if (!recording.record("result", summary)) return recording.drain();
        } catch {
          dropped++;
        }
        return undefined;
      },
      onUnscannableCopy: () => undefined,
    });
    const N = 1000;
    relay.expect({ kind: "query", track: { text: "select ...", started: performance.now(), results: 0 } });
    const parts: Buffer[] = [];
    for (let i = 1; i <= N; i++) parts.push(rowDescription("n"), dataRow(String(i)), commandComplete("SELECT 1"));
    parts.push(readyForQuery("I"));
    const stream = Buffer.concat(parts);
    // the target socket: 16 KiB chunks, delivered only while it is not paused
    let at = 0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (!target.paused && at < stream.length) {
          relay.push(stream.subarray(at, at + 16 * 1024));
          at += 16 * 1024;
        }
        if (at >= stream.length && recorded === N) resolve();
        else if (!target.paused) setImmediate(pump);
      };
      target.onResume = () => setImmediate(pump);
      pump();
      const done = setInterval(() => {
        if (at >= stream.length && recorded === N) {
          clearInterval(done);
          resolve();
        }
      }, 5);
    });
    expect(dropped).toBe(0);
    expect(client.bytes.equals(stream)).toBe(true); // every byte relayed, in order
    expect(target.pauses).toBeGreaterThan(0); // the recorder did push back
    await recording.seal("done");
    const events = await collect(readRecording(store, "bp-relay"));
    const results = events.filter((e) => e.kind === "result").map((e) => (e.data as ResultSummary).statement);
    expect(results).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  });

  it("records the results it held back for the recorder when the session ends, before the seal", () => {
    const client = new FakeSocket();
    const target = new FakeSocket();
    const recorded: number[] = [];
    const relay = new BackendRelay({
      client: asSocket(client),
      target: asSocket(target),
      sampleRows: 0,
      // the recorder never drains (its store is slow): only the first result is taken before the relay waits
      onResult: (summary) => {
        recorded.push(summary.statement);
        return new Promise<void>(() => undefined);
      },
      onUnscannableCopy: () => undefined,
    });
    relay.expect({ kind: "query", track: { text: "select ...", started: 0, results: 0 } });
    const results = Array.from({ length: 100 }, () => commandComplete("SELECT 0"));
    relay.push(Buffer.concat(results.slice(0, 60)));
    relay.push(Buffer.concat([...results.slice(60), readyForQuery("I")])); // queued: the target is paused
    expect(target.paused).toBe(true);
    expect(recorded).toEqual([1]);
    relay.finish();
    expect(recorded).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(client.bytes.equals(Buffer.concat([...results, readyForQuery("I")]))).toBe(true);
  });

  it("stops reading the client after a Bind the recorder pushed back on, until it drained", async () => {
    const client = new FakeSocket();
    const target = new FakeSocket();
    let release: () => void = () => undefined;
    const drained = new Promise<void>((r) => (release = r));
    const events: unknown[] = [];
    const session = {
      connection: { approvals: [], index: 0 },
      recording: {
        record: (kind: string, data: unknown) => {
          events.push({ kind, data });
          return kind !== "bind"; // every Bind finds the recorder over its high-water mark
        },
        drain: () => drained,
      },
    } as unknown as GatedSession;
    const relay = { expect: () => undefined } as unknown as BackendRelay;
    const pipeline = new FrontendPipeline({
      session,
      analyzer: { analyze: () => ({ facts: {} as never, statements: [] }) },
      client: asSocket(client),
      target: asSocket(target),
      relay,
      describeBeforeExecute: false,
      refuseCopyOut: false,
      refuseBinaryCopyOut: false,
      paramMasker: paramMaskerFor(connection()),
      onFatal: () => undefined,
      onRecordingUnavailable: () => undefined,
      lexerState: new TargetLexerState(),
      onTerminate: () => undefined,
    });
    const execute = message("E", Buffer.from("\0\0\0\0\0"));
    const sync = message("S");
    pipeline.push(Buffer.concat([bind(["1"]), execute, sync]));
    await new Promise((r) => setTimeout(r, 20));
    // the Bind went to the target, nothing behind it; the client is not read
    expect(target.bytes.equals(bind(["1"]))).toBe(true);
    expect(client.paused).toBe(true);
    release();
    await new Promise((r) => setTimeout(r, 20));
    expect(target.bytes.equals(Buffer.concat([bind(["1"]), execute, sync]))).toBe(true);
    expect(client.paused).toBe(false);
  });
});

describe("redacted statement text", () => {
  const SECRET = "s3cret-pw";
  const analyzer: SqlAnalyzerLike = {
    analyze: (sql) => ({
      facts: { statements: [{ kind: "alter_role", tables: [] }] } as never,
      statements: [{ kind: "alter_role", text: sql, tables: [] }],
      ...(sql.includes(SECRET) ? { redacted: sql.replace(SECRET, "********") } : {}),
    }),
  };

  function pipelineWith(admitted: GateRequest[], events: { kind: string; data: unknown }[]) {
    const target = new FakeSocket();
    const session = {
      connection: { approvals: [], index: 0 },
      admit: (r: GateRequest) => {
        admitted.push(r);
        return Promise.resolve({ forward: true, record: {} });
      },
      recording: { record: (kind: string, data: unknown) => events.push({ kind, data }) > 0, drain: async () => {} },
    } as unknown as GatedSession;
    const pipeline = new FrontendPipeline({
      session,
      analyzer,
      client: asSocket(new FakeSocket()),
      target: asSocket(target),
      relay: { expect: () => undefined } as unknown as BackendRelay,
      describeBeforeExecute: false,
      refuseCopyOut: false,
      refuseBinaryCopyOut: false,
      paramMasker: paramMaskerFor(connection()),
      onFatal: () => undefined,
      onRecordingUnavailable: () => undefined,
      lexerState: new TargetLexerState(),
      onTerminate: () => undefined,
    });
    return { pipeline, target };
  }

  it("shows evidence the analyzer's redacted text and sends the target the exact one", async () => {
    const admitted: GateRequest[] = [];
    const events: { kind: string; data: unknown }[] = [];
    const { pipeline, target } = pipelineWith(admitted, events);
    const sql = `alter role app password '${SECRET}'`;
    pipeline.push(Buffer.concat([query(sql), parse(sql, "st"), bind([], [], "", "st"), query("select 1")]));
    await new Promise((r) => setTimeout(r, 20));
    expect(admitted.map((r) => [r.text, r.shown?.text])).toEqual([
      [sql, "alter role app password '********'"],
      [sql, "alter role app password '********'"],
      ["select 1", undefined],
    ]);
    expect(admitted[2]).not.toHaveProperty("shown");
    expect(JSON.stringify(events)).not.toContain(SECRET);
    expect(events.find((e) => e.kind === "bind")?.data).toMatchObject({ text: "alter role app password '********'" });
    expect(target.bytes.toString()).toContain(SECRET); // the target gets what the client sent
  });
});

describe("masking plans of repeated RowDescriptions", () => {
  const columnRule: MaskerLike = {
    enabled: true,
    hasColumnRules: true,
    hasDetectors: false,
    columnMatches: (c) => c.column === "email",
    maskText: () => undefined,
  };
  const email = (n: string) => ({ schema: "public", table: "users", column: n });

  it("plans each description once while the catalog answers from its cache, and every row is still masked", () => {
    const client = new FakeSocket();
    const results: ResultSummary[] = [];
    let resolves = 0;
    const relay = new BackendRelay({
      client: asSocket(client),
      target: asSocket(new FakeSocket()),
      sampleRows: 1,
      onResult: (r) => void results.push(r),
      onUnscannableCopy: () => undefined,
      masking: {
        masker: columnRule,
        maskText: "***",
        // the first description's column is users.email, the next one's users.name
        resolver: { resolve: (o) => (resolves++, o.map(() => [email(resolves === 1 ? "email" : "name")])) },
      },
    });
    for (let i = 0; i < 3; i++) {
      relay.expect({ kind: "query", track: { text: "select email from users", started: 0, results: 0 } });
      relay.push(Buffer.concat([rowDescription("email"), dataRow(`bob${i}@example.com`), commandComplete("SELECT 1")]));
      relay.push(readyForQuery("I"));
    }
    expect(resolves).toBe(1);
    expect(client.bytes.toString("latin1")).not.toContain("example.com");
    expect(results.map((r) => [r.columns, r.masked_columns, r.sample])).toEqual(
      Array.from({ length: 3 }, () => [["email"], ["email"], [["***"]]]),
    );
    // another description (another column name) is planned for itself
    relay.expect({ kind: "query", track: { text: "select name from users", started: 0, results: 0 } });
    relay.push(
      Buffer.concat([rowDescription("name"), dataRow("bob"), commandComplete("SELECT 1"), readyForQuery("I")]),
    );
    expect(resolves).toBe(2);
    expect(results.at(-1)).toMatchObject({ columns: ["name"], sample: [["bob"]] });
  });

  it("does not keep a plan made after a catalog lookup, nor the mask-everything plan of a failed one", async () => {
    const client = new FakeSocket();
    let calls = 0;
    const relay = new BackendRelay({
      client: asSocket(client),
      target: asSocket(new FakeSocket()),
      sampleRows: 0,
      onResult: () => undefined,
      onUnscannableCopy: () => undefined,
      masking: {
        masker: columnRule,
        maskText: "***",
        resolver: {
          resolve: (o) => {
            calls++;
            if (calls === 1) return Promise.reject(new Error("catalog down"));
            if (calls === 2) return Promise.resolve(o.map(() => [email("other")]));
            return o.map(() => [email("other")]);
          },
        },
      },
    });
    const run = async (value: string) => {
      relay.expect({ kind: "query", track: { text: "select x from t", started: 0, results: 0 } });
      relay.push(Buffer.concat([rowDescription("x"), dataRow(value), commandComplete("SELECT 1"), readyForQuery("I")]));
      await new Promise((r) => setImmediate(r));
    };
    await run("first");
    expect(client.bytes.toString("latin1")).not.toContain("first"); // failed lookup: masked whole
    await run("second");
    await run("third");
    await run("fourth");
    expect(calls).toBe(3); // planned again after each lookup, then kept
    expect(client.bytes.toString("latin1")).toMatch(/second[\s\S]*third[\s\S]*fourth/);
  });
});

describe("binary COPY OUT with detectors", () => {
  const detectors: MaskerLike = {
    enabled: true,
    hasColumnRules: false,
    hasDetectors: true,
    columnMatches: () => false,
    maskText: () => undefined,
  };

  it("relays nothing of it and reports it, while earlier results pass", () => {
    const client = new FakeSocket();
    const target = new FakeSocket();
    const cut: string[] = [];
    const relay = new BackendRelay({
      client: asSocket(client),
      target: asSocket(target),
      sampleRows: 1,
      onResult: () => undefined,
      onUnscannableCopy: (text) => cut.push(text),
      masking: { masker: detectors, maskText: "***", resolver: { resolve: (o) => o.map(() => []) } },
    });
    relay.expect({ kind: "query", track: { text: "select 1; copy t to stdout", started: 0, results: 0 } });
    const before = Buffer.concat([rowDescription("n"), dataRow("1"), commandComplete("SELECT 1")]);
    const copyOut = message("H", Buffer.from([1, 0, 1, 0, 1]));
    const rows = message("d", Buffer.from("PGCOPY\n\xff\r\n\0secret"));
    relay.push(Buffer.concat([before, copyOut, rows]));
    relay.push(Buffer.concat([rows, message("c"), commandComplete("COPY 1"), readyForQuery("I")]));
    expect(client.bytes.equals(before)).toBe(true);
    expect(cut).toEqual(["select 1; copy t to stdout"]);
    expect(target.paused).toBe(true);
  });

  it("scans text COPY OUT rows as before", () => {
    const client = new FakeSocket();
    const relay = new BackendRelay({
      client: asSocket(client),
      target: asSocket(new FakeSocket()),
      sampleRows: 1,
      onResult: () => undefined,
      onUnscannableCopy: () => expect.fail("text COPY is scanned, not cut"),
      masking: {
        masker: { ...detectors, maskText: (s) => ({ text: s.replace(/\d/g, "*"), hits: 1 }) },
        maskText: "***",
        resolver: { resolve: (o) => o.map(() => []) },
      },
    });
    relay.expect({ kind: "query", track: { text: "copy t to stdout", started: 0, results: 0 } });
    relay.push(
      Buffer.concat([
        message("H", Buffer.from([0, 0, 1, 0, 0])),
        message("d", Buffer.from("card 4111\n")),
        message("c"),
      ]),
    );
    expect(client.bytes.toString("latin1")).toContain("card ****");
  });
});

describe("COPY OUT refused by the analyzed format where detectors run", () => {
  let analyzer: PostgresSqlAnalyzer;
  beforeAll(async () => {
    analyzer = await PostgresSqlAnalyzer.load();
  });

  function pipeline() {
    const target = new FakeSocket();
    const admitted: string[] = [];
    const refusals: string[] = [];
    const refused: { text: string; reason: string; rule?: string }[] = [];
    const session = {
      connection: { approvals: [], index: 0 },
      admit: (r: GateRequest) => {
        admitted.push(r.text);
        return Promise.resolve({ forward: true, record: {} });
      },
      // the gate writes the refusal's evidence (gate.test.ts); here: that the adapter asks it to, with the reason
      refuse: (r: RequestEvidence, why: AdapterRefusal) => {
        refused.push({ text: r.text, ...why });
        return Promise.resolve(undefined);
      },
      recording: { record: () => true, drain: async () => {} },
    } as unknown as GatedSession;
    const relay = {
      expect: (e: { refusal?: Buffer }) => {
        if (e.refusal) refusals.push(e.refusal.toString("latin1"));
      },
      whenSettled: () => Promise.resolve(), // nothing was forwarded before
    } as unknown as BackendRelay;
    const p = new FrontendPipeline({
      session,
      analyzer,
      client: asSocket(new FakeSocket()),
      target: asSocket(target),
      relay,
      describeBeforeExecute: false,
      refuseCopyOut: false,
      refuseBinaryCopyOut: true,
      paramMasker: paramMaskerFor(connection()),
      onFatal: () => undefined,
      onRecordingUnavailable: () => undefined,
      lexerState: new TargetLexerState(),
      onTerminate: () => undefined,
    });
    return { p, target, admitted, refusals, refused };
  }

  it("refuses binary in every spelling, escaped ones included, and formats it cannot read", async () => {
    const binary = [
      "copy (select note from t) to stdout with (format binary)",
      "copy t to stdout (format 'binary')",
      "copy binary t to stdout",
      "copy t to stdout with binary",
      "copy t to stdout (format E'\\x62inary')",
      "copy t to stdout (format U&'\\0062inary')",
      "select 1; copy t to stdout (format $$binary$$)",
    ];
    const unknown = ["copy t to stdout (format 'BINARY')", "copy t to stdout (format text, format binary)"];
    for (const sql of [...binary, ...unknown]) {
      const { p, target, admitted, refusals, refused } = pipeline();
      p.push(query(sql));
      await vi.waitFor(() => expect(refusals, sql).toHaveLength(1));
      expect(admitted, sql).toEqual([]);
      expect(target.bytes.equals(query(ABORT_SQL)), sql).toBe(true);
      expect(refusals, sql).toHaveLength(1);
      expect(refusals[0], sql).toContain(
        binary.includes(sql) ? "binary COPY ... TO STDOUT cannot be scanned" : "in a format the gateway cannot read",
      );
      expect(refused, sql).toMatchObject([{ text: sql, rule: "connections[0].masking" }]);
    }
    // the extended protocol too
    const { p, target, admitted, refused } = pipeline();
    p.push(parse("copy t to stdout (format E'\\x62inary')", "st"));
    await vi.waitFor(() => expect(refused).toHaveLength(1));
    expect(admitted).toEqual([]);
    expect(target.bytes.equals(parse(ABORT_SQL))).toBe(true);
  });

  it("lets text and CSV through, also when a column, alias or literal is named binary", async () => {
    for (const sql of [
      "copy (select note as binary from t) to stdout",
      `copy (select "binary", 'binary' from t) to stdout with (format csv)`,
      `copy "binary" to stdout (format text)`,
      "copy t to stdout",
      // COPY FROM is not output: not this check's business
      "copy t from stdin (format binary)",
    ]) {
      const { p, target, admitted, refusals } = pipeline();
      p.push(query(sql));
      await new Promise((r) => setTimeout(r, 10));
      expect(refusals, sql).toEqual([]);
      expect(admitted, sql).toEqual([sql]);
      expect(target.bytes.equals(query(sql)), sql).toBe(true);
    }
  });
});
