/**
 * PostgreSQL protocol v3 constants and the backend messages the gateway itself sends to clients. Everything the
 * target sends is relayed as bytes; only refusals, errors and the startup answers are built here.
 */

/** Special "protocol versions" of untyped startup-phase messages. */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
export const PROTOCOL_3_0 = 196608;

/** Largest untyped startup-phase message accepted (PostgreSQL itself allows 10,000 bytes). */
export const MAX_STARTUP_MESSAGE = 1024 * 1024;
/** Largest typed message accepted from a client (CopyData, huge queries); bigger means garbage or abuse. */
export const MAX_CLIENT_MESSAGE = 64 * 1024 * 1024;

/** SQLSTATE codes the gateway answers with. */
export const SQLSTATE = {
  protocolViolation: "08P01",
  connectionFailure: "08006",
  invalidPassword: "28P01",
  invalidAuthorization: "28000",
  unknownDatabase: "3D000",
  insufficientPrivilege: "42501",
  featureNotSupported: "0A000",
  systemError: "58000",
  adminShutdown: "57P01",
} as const;

export type Severity = "ERROR" | "FATAL" | "NOTICE";

export interface ErrorFields {
  severity: Severity;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function cstring(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** A typed message: type byte, int32 length (including itself), body. */
export function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

/** ErrorResponse ('E') or NoticeResponse ('N'). */
export function errorResponse(f: ErrorFields, type: "E" | "N" = "E"): Buffer {
  const parts = [
    Buffer.from("S"),
    cstring(f.severity),
    Buffer.from("V"),
    cstring(f.severity),
    Buffer.from("C"),
    cstring(f.code),
    Buffer.from("M"),
    cstring(f.message),
  ];
  if (f.detail) parts.push(Buffer.from("D"), cstring(f.detail));
  if (f.hint) parts.push(Buffer.from("H"), cstring(f.hint));
  parts.push(Buffer.from([0]));
  return message(type, Buffer.concat(parts));
}

export function readyForQuery(status: "I" | "T" | "E"): Buffer {
  return message("Z", Buffer.from(status));
}

export function authenticationRequest(code: number): Buffer {
  return message("R", int32(code));
}

export const AUTH_OK = 0;
export const AUTH_CLEARTEXT = 3;
export const AUTH_MD5 = 5;
export const AUTH_SASL = 10;
export const AUTH_SASL_CONTINUE = 11;
export const AUTH_SASL_FINAL = 12;

export function backendKeyData(pid: number, secret: number): Buffer {
  return message("K", Buffer.concat([int32(pid), int32(secret)]));
}

/** NegotiateProtocolVersion: the newest minor version we speak and the `_pq_.` options we do not know. */
export function negotiateProtocolVersion(minor: number, unsupported: string[]): Buffer {
  return message("v", Buffer.concat([int32(minor), int32(unsupported.length), ...unsupported.map(cstring)]));
}

/** Reads the NUL-terminated string at `offset`; returns it and the offset after the NUL (or -1 if unterminated). */
export function readCString(buf: Buffer, offset: number): [string, number] {
  const end = buf.indexOf(0, offset);
  if (end < 0) return ["", -1];
  return [buf.toString("utf8", offset, end), end + 1];
}

/** The fields of an ErrorResponse/NoticeResponse body, keyed by their one-letter codes. */
export function parseErrorFields(body: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const code = String.fromCharCode(body[off] as number);
    const [value, next] = readCString(body, off + 1);
    if (next < 0) break;
    fields.set(code, value);
    off = next;
  }
  return fields;
}

// ---------------------------------------------------------------- frontend messages sent to the target

export function startupMessage(params: Record<string, string>): Buffer {
  const parts = [int32(0), int32(PROTOCOL_3_0)];
  for (const [k, v] of Object.entries(params)) parts.push(cstring(k), cstring(v));
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  out.writeInt32BE(out.length, 0);
  return out;
}

export function sslRequest(): Buffer {
  return Buffer.concat([int32(8), int32(SSL_REQUEST_CODE)]);
}

export function cancelRequest(pid: number, secret: number): Buffer {
  return Buffer.concat([int32(16), int32(CANCEL_REQUEST_CODE), int32(pid), int32(secret)]);
}

export function passwordMessage(password: string): Buffer {
  return message("p", cstring(password));
}

export function saslInitialResponse(mechanism: string, data: Buffer): Buffer {
  return message("p", Buffer.concat([cstring(mechanism), int32(data.length), data]));
}

export function saslResponse(data: Buffer): Buffer {
  return message("p", data);
}

export function query(text: string): Buffer {
  return message("Q", cstring(text));
}

/** Parse of an unnamed statement with no parameter types. */
export function parse(text: string, name = ""): Buffer {
  return message("P", Buffer.concat([cstring(name), cstring(text), Buffer.from([0, 0])]));
}

export function describePortal(name: string): Buffer {
  return message("D", Buffer.concat([Buffer.from("P"), cstring(name)]));
}
