/**
 * PostgreSQL v3 frontend messages as raw bytes, a backend-stream reader, and fast-check arbitraries that mix valid
 * messages with malformed ones. Written independently of src/protocols/postgres on purpose: a fuzzer that shares
 * the gateway's framing code would share its bugs.
 */
import fc from "fast-check";

const PROTOCOL_3_0 = 196608;
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0, 0);
  return b;
};
const int16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n, 0);
  return b;
};
const cstr = (s: string | Buffer): Buffer => Buffer.concat([typeof s === "string" ? Buffer.from(s) : s, Buffer.of(0)]);

/** A typed message with a correct length field. */
export function typed(type: string | number, body: Buffer = Buffer.alloc(0)): Buffer {
  const t = typeof type === "number" ? type : type.charCodeAt(0);
  return Buffer.concat([Buffer.of(t), int32(body.length + 4), body]);
}

export function startup(params: Record<string, string | Buffer>, version = PROTOCOL_3_0): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.of(0)]);
  return Buffer.concat([int32(body.length + 8), int32(version), body]);
}

export const sslRequest = (): Buffer => Buffer.concat([int32(8), int32(SSL_REQUEST)]);
export const gssencRequest = (): Buffer => Buffer.concat([int32(8), int32(GSSENC_REQUEST)]);
export const cancelRequest = (pid: number, secret: number): Buffer =>
  Buffer.concat([int32(16), int32(CANCEL_REQUEST), int32(pid), int32(secret)]);

export const password = (token: string): Buffer => typed("p", cstr(token));
export const query = (text: string | Buffer): Buffer => typed("Q", cstr(text));
export const parse = (name: string, text: string | Buffer, types: number[] = []): Buffer =>
  typed("P", Buffer.concat([cstr(name), cstr(text), int16(types.length), ...types.map(int32)]));
export function bind(portal: string, statement: string, params: (Buffer | null)[]): Buffer {
  return typed(
    "B",
    Buffer.concat([
      cstr(portal),
      cstr(statement),
      int16(0),
      int16(params.length),
      ...params.flatMap((p) => (p === null ? [int32(-1)] : [int32(p.length), p])),
      int16(0),
    ]),
  );
}
export const execute = (portal: string, maxRows = 0): Buffer =>
  typed("E", Buffer.concat([cstr(portal), int32(maxRows)]));
export const describe = (what: "S" | "P", name: string): Buffer =>
  typed("D", Buffer.concat([Buffer.from(what), cstr(name)]));
export const close = (what: "S" | "P", name: string): Buffer =>
  typed("C", Buffer.concat([Buffer.from(what), cstr(name)]));
export const sync = (): Buffer => typed("S");
export const flush = (): Buffer => typed("H");
export const terminate = (): Buffer => typed("X");
export const copyData = (data: Buffer): Buffer => typed("d", data);
export const copyDone = (): Buffer => typed("c");
export const copyFail = (reason: string): Buffer => typed("f", cstr(reason));
export const functionCall = (oid: number): Buffer =>
  typed("F", Buffer.concat([int32(oid), int16(0), int16(0), int16(0)]));

/** A typed header whose length field says `declared`, followed by `body` (which may be shorter: truncated). */
export const badLength = (type: number, declared: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.of(type), int32(declared), body]);

/** Typed-message limit of the gateway's framing (docs/postgres.md, "Bad input"). */
export const MAX_TYPED = 64 * 1024 * 1024;

/**
 * How a stream of typed frontend messages frames: "complete" (whole messages only), "bad" (a length below 4 or
 * above the limit: the gateway must refuse it) or "truncated" (the last message is still missing bytes).
 */
export function frameTyped(bytes: Buffer): "complete" | "bad" | "truncated" {
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 5) return "truncated";
    const len = bytes.readInt32BE(at + 1);
    if (len < 4 || len + 1 > MAX_TYPED) return "bad";
    if (bytes.length - at < len + 1) return "truncated";
    at += len + 1;
  }
  return "complete";
}

export interface BackendMessage {
  type: string;
  body: Buffer;
}

/** Splits a backend byte stream into messages; `rest` is an incomplete tail, `bad` a header no server sends. */
export function readBackend(bytes: Buffer): { messages: BackendMessage[]; rest: number; bad?: string } {
  const messages: BackendMessage[] = [];
  let at = 0;
  while (bytes.length - at >= 5) {
    const type = bytes[at] as number;
    const len = bytes.readInt32BE(at + 1);
    // every backend message type is an ASCII letter (or '1'..'3' for Parse/Bind/CloseComplete)
    if (!/[A-Za-z1-3]/.test(String.fromCharCode(type)) || len < 4) {
      return { messages, rest: bytes.length - at, bad: `type 0x${type.toString(16)} length ${len} at ${at}` };
    }
    if (bytes.length - at < len + 1) break;
    messages.push({ type: String.fromCharCode(type), body: bytes.subarray(at + 5, at + 1 + len) });
    at += len + 1;
  }
  return { messages, rest: bytes.length - at };
}

/** The fields of an ErrorResponse/NoticeResponse ('S' severity, 'C' SQLSTATE, 'M' message...). */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const code = String.fromCharCode(body[at] as number);
    const end = body.indexOf(0, at + 1);
    if (end < 0) break;
    out[code] = body.toString("utf8", at + 1, end);
    at = end + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries

/** Byte sequences that are not valid UTF-8: stray continuation, overlong, surrogate, > U+10FFFF, truncated lead. */
export const INVALID_UTF8: readonly Buffer[] = [
  Buffer.of(0xff),
  Buffer.of(0x80),
  Buffer.of(0xc0, 0xaf),
  Buffer.of(0xc3, 0x28),
  Buffer.of(0xed, 0xa0, 0x80),
  Buffer.of(0xf4, 0x90, 0x80, 0x80),
  Buffer.of(0xe2, 0x82),
  Buffer.of(0xf8, 0x88, 0x80, 0x80, 0x80),
];

/**
 * Statements that are harmless on the shared test database (other e2e files use it at the same time): reads,
 * transaction control, settings, temp objects, COPY to the client, errors. Guardrails on the fuzz connection
 * deny the destructive kinds as a second line.
 */
export const SAFE_SQL: readonly string[] = [
  "SELECT 1",
  "select $1::text, $2::int",
  "SELECT generate_series(1, 50) AS n",
  "SELECT repeat('x', 5000)",
  "SELECT * FROM pg_class LIMIT 3",
  "SELECT 1/0",
  "SELECT pg_sleep(0.001)",
  "BEGIN",
  "COMMIT",
  "ROLLBACK",
  "SAVEPOINT s1",
  "SET application_name = 'fz'",
  "SHOW server_version",
  "CREATE TEMP TABLE IF NOT EXISTS fz_t (a text)",
  "COPY fz_t FROM STDIN",
  "COPY (SELECT 1) TO STDOUT",
  "COPY fz_t TO STDOUT",
  "SELECT * FROM fz_t",
  "PREPARE fzp AS SELECT 1",
  "EXECUTE fzp",
  "DEALLOCATE ALL",
  "LISTEN fz",
  "NOTIFY fz, 'x'",
  "EXPLAIN SELECT 1",
  "SELECT 'it''s', $$dollar$$, E'\\x41'",
  "SELEC 1",
  "SELECT (",
  "select 1; select 2",
  "SELECT '",
  "",
];

/** SQL text that carries `marker` in a comment, optionally around invalid UTF-8, NULs and junk. */
export function sqlText(marker: string): fc.Arbitrary<Buffer> {
  const junk = fc.oneof(
    { weight: 3, arbitrary: fc.constant(Buffer.alloc(0)) },
    fc.constantFrom(...INVALID_UTF8),
    fc.string({ maxLength: 6 }).map((s) => Buffer.from(s)),
    fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)),
  );
  return fc
    .tuple(fc.constantFrom(...SAFE_SQL), junk, junk)
    .map(([sql, before, after]) => Buffer.concat([Buffer.from(`${sql} /* ${marker} */ `), before, after]));
}

export type Phase = "raw" | "ssl" | "startup" | "auth" | "copy";

/** One message of a fuzz case. `text` messages carry the case's marker so the target's log can be matched. */
export function fuzzMessage(marker: string, token: string): fc.Arbitrary<Buffer> {
  const name = fc.constantFrom("", "s1", "p1", "fzp");
  const param = fc.option(
    fc.oneof(
      fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
      fc.constantFrom(...INVALID_UTF8),
    ),
  );
  const valid = fc.oneof(
    sqlText(marker).map((t) => query(t)),
    fc
      .tuple(name, sqlText(marker), fc.array(fc.constantFrom(0, 23, 25), { maxLength: 2 }))
      .map(([n, t, ty]) => parse(n, t, ty)),
    fc.tuple(name, name, fc.array(param, { maxLength: 3 })).map(([p, s, ps]) => bind(p, s, ps)),
    fc.tuple(name, fc.integer({ min: -1, max: 3 })).map(([p, n]) => execute(p, n)),
    fc.tuple(fc.constantFrom("S" as const, "P" as const), name).map(([w, n]) => describe(w, n)),
    fc.tuple(fc.constantFrom("S" as const, "P" as const), name).map(([w, n]) => close(w, n)),
    fc.constant(sync()),
    fc.constant(flush()),
    fc.uint8Array({ maxLength: 64 }).map((a) => copyData(Buffer.from(a))),
    fc.constant(copyDone()),
    fc.constant(copyFail("fuzz")),
    // fast-path calls get through (on_unparseable: allow), so only harmless OIDs: none, now(), out of range
    fc.constantFrom(0, 1299, 0x7fffffff).map(functionCall),
    fc.constant(terminate()),
    fc.constant(password(token)),
    fc.constant(sslRequest()),
    fc.constant(gssencRequest()),
    fc.tuple(fc.integer(), fc.integer()).map(([p, s]) => cancelRequest(p, s)),
    fc.constant(startup({ user: "x", database: "fuzz-db" })),
  );
  const malformed = fc.oneof(
    // any type byte, a correct length, random body (unknown types, short bodies for known types)
    fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 32 }))
      .map(([t, b]) => typed(t, Buffer.from(b))),
    // known types with bodies too short for their fields
    fc
      .tuple(fc.constantFrom(..."QPBEDCFfpdS"), fc.uint8Array({ maxLength: 3 }))
      .map(([t, b]) => typed(t, Buffer.from(b))),
    // lengths below 4, negative, just above the limits, huge
    fc
      .tuple(
        fc.constantFrom(...Buffer.from("QPBEdXp")),
        fc.constantFrom(-1, -0x80000000, 0, 1, 3, 0x7fffffff, 0x40000001, 0x04000001, 0x00100001),
        fc.uint8Array({ maxLength: 8 }),
      )
      .map(([t, len, b]) => badLength(t, len, Buffer.from(b))),
    // a declared length longer than what follows (truncated)
    fc
      .tuple(
        fc.constantFrom(...Buffer.from("QPBd")),
        fc.integer({ min: 5, max: 4096 }),
        fc.uint8Array({ maxLength: 8 }),
      )
      .map(([t, len, b]) => badLength(t, len, Buffer.from(b))),
    fc.uint8Array({ minLength: 1, maxLength: 24 }).map((a) => Buffer.from(a)),
  );
  return fc.oneof({ weight: 3, arbitrary: valid }, { weight: 2, arbitrary: malformed });
}

/** The first bytes of a connection for the phases that do not need a login. */
export function prelude(phase: "raw" | "ssl" | "startup"): fc.Arbitrary<Buffer> {
  if (phase === "raw") return fc.constant(Buffer.alloc(0));
  if (phase === "ssl")
    return fc.oneof(
      fc.constant(sslRequest()),
      fc.constant(Buffer.concat([sslRequest(), sslRequest()])),
      fc.uint8Array({ minLength: 1, maxLength: 32 }).map((g) => Buffer.concat([sslRequest(), Buffer.from(g)])),
      fc.constant(Buffer.concat([gssencRequest(), sslRequest()])),
    );
  // a startup message with odd parameters: invalid UTF-8, unknown keys, missing user/database, odd versions
  const value = fc.oneof(
    fc.constantFrom("fuzz-db", "app-db", "nope", ""),
    fc.constantFrom(...INVALID_UTF8),
    fc.string({ maxLength: 12 }).map((s) => Buffer.from(s)),
  );
  return fc
    .tuple(
      fc.dictionary(fc.constantFrom("user", "database", "options", "application_name", "client_encoding", "x"), value),
      fc.constantFrom(PROTOCOL_3_0, PROTOCOL_3_0 + 1, 0x00020000, 0x00040000, 0),
    )
    .map(([params, version]) => startup(params, version));
}
