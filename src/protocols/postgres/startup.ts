import type { Socket } from "node:net";
import { TLSSocket, type SecureContext } from "node:tls";
import { bodyOf, MessageReader, ProtocolError } from "./framing.js";
import {
  AUTH_CLEARTEXT,
  authenticationRequest,
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_MESSAGE,
  negotiateProtocolVersion,
  PROTOCOL_3_0,
  readCString,
  SQLSTATE,
  SSL_REQUEST_CODE,
} from "./wire.js";

/** A startup-phase failure the client is told about as a FATAL ErrorResponse with this SQLSTATE. */
export class StartupError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "StartupError";
  }
}

export interface StartupOptions {
  /** Present when the listener offers TLS. */
  secureContext?: SecureContext;
  /** Whether this client must use TLS before sending a password (by default: unless it is on loopback). */
  tlsRequired: boolean;
}

export type ClientHello =
  | { kind: "cancel"; pid: number; secret: number }
  | {
      kind: "startup";
      socket: Socket | TLSSocket;
      tls: boolean;
      /** Startup parameters (user, database, application_name, options...). */
      params: Map<string, string>;
      reader: MessageReader;
    };

/**
 * Runs the client's startup phase up to (not including) authentication: SSLRequest and GSSENCRequest
 * negotiation, then either a CancelRequest or a StartupMessage for protocol 3.
 */
export async function readClientHello(socket: Socket, options: StartupOptions): Promise<ClientHello> {
  let current: Socket | TLSSocket = socket;
  let reader = new MessageReader(socket);
  let tls = false;
  for (;;) {
    const msg = await reader.untyped(MAX_STARTUP_MESSAGE);
    if (msg.code === SSL_REQUEST_CODE && msg.raw.length === 8 && !tls) {
      if (!options.secureContext) {
        current.write("N");
        continue;
      }
      // Bytes pipelined after SSLRequest would be processed as if they came over TLS (CVE-2021-23214).
      if (reader.buffered > 0) throw new ProtocolError("unencrypted data after SSL request");
      reader.detach();
      current.write("S");
      const secure = new TLSSocket(socket, { isServer: true, secureContext: options.secureContext });
      current = secure;
      reader = new MessageReader(secure);
      tls = true;
      continue;
    }
    if (msg.code === GSSENC_REQUEST_CODE && msg.raw.length === 8) {
      current.write("N");
      continue;
    }
    if (msg.code === CANCEL_REQUEST_CODE && msg.raw.length === 16) {
      reader.detach();
      return { kind: "cancel", pid: msg.raw.readInt32BE(8), secret: msg.raw.readInt32BE(12) };
    }
    if (msg.code >>> 16 !== 3) {
      throw new StartupError(
        SQLSTATE.featureNotSupported,
        `unsupported frontend protocol ${msg.code >>> 16}.${msg.code & 0xffff}: server supports 3.0`,
      );
    }
    const params = parseStartupParams(msg.raw.subarray(8));
    // Newer clients may ask for 3.x or send _pq_ options; say which ones we speak instead of failing them.
    const unsupported = [...params.keys()].filter((k) => k.startsWith("_pq_."));
    if (msg.code !== PROTOCOL_3_0 || unsupported.length > 0) {
      current.write(negotiateProtocolVersion(PROTOCOL_3_0, unsupported));
      for (const k of unsupported) params.delete(k);
    }
    if (options.tlsRequired && !tls) {
      throw new StartupError(
        SQLSTATE.invalidAuthorization,
        "gatehouse requires TLS for this client: connect with sslmode=require (the password is a bearer token)",
      );
    }
    return { kind: "startup", socket: current, tls, params, reader };
  }
}

function parseStartupParams(body: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const [key, afterKey] = readCString(body, off);
    if (afterKey < 0) throw new ProtocolError("unterminated startup parameter name");
    const [value, afterValue] = readCString(body, afterKey);
    if (afterValue < 0) throw new ProtocolError("unterminated startup parameter value");
    params.set(key, value);
    off = afterValue;
  }
  return params;
}

/** Asks for a cleartext password (the bearer token) and returns it. */
export async function readBearerPassword(socket: Socket | TLSSocket, reader: MessageReader): Promise<string> {
  socket.write(authenticationRequest(AUTH_CLEARTEXT));
  const frame = await reader.typed(MAX_STARTUP_MESSAGE);
  if (frame.type !== "p") throw new ProtocolError(`expected a password message, got '${frame.type}'`);
  const [password, next] = readCString(bodyOf(frame), 0);
  if (next < 0) throw new ProtocolError("unterminated password message");
  return password;
}
