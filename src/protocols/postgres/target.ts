import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import type { StreamPurpose, TargetStream } from "../../core/adapter/index.js";
import type { PostgresConnectionConfig } from "../../core/policy/schema.js";
import { bodyOf, MessageReader, ProtocolError } from "./framing.js";
import { agentPassword, heldPassword, type PasswordSecret } from "./password.js";
import { ScramClient } from "./scram.js";
import {
  AUTH_CLEARTEXT,
  AUTH_MD5,
  AUTH_OK,
  AUTH_SASL,
  AUTH_SASL_CONTINUE,
  AUTH_SASL_FINAL,
  cancelRequest,
  parseErrorFields,
  passwordMessage,
  readCString,
  saslInitialResponse,
  saslResponse,
  sslRequest,
  startupMessage,
} from "./wire.js";

export type PostgresTarget = PostgresConnectionConfig["target"];

/** Target messages are trusted more than client ones, but a login exchange is still small. */
const MAX_LOGIN_MESSAGE = 1024 * 1024;

/** The target refused or failed the login; `fields` are its ErrorResponse fields when it sent one. */
export class TargetError extends Error {
  constructor(
    message: string,
    readonly fields?: Map<string, string>,
  ) {
    super(message);
    this.name = "TargetError";
  }
}

/**
 * Opens a stream to the connection's target (the core's `openTarget`, bound to this connection), with the agent's
 * credential oracle when only the agent holds the password (`secrets: agent`).
 */
export type OpenTargetStream = (purpose: StreamPurpose) => Promise<TargetStream>;

export interface TargetConnection {
  socket: Duplex;
  /** ParameterStatus messages exactly as the target sent them, relayed to the client at its login. */
  parameterStatus: Buffer[];
  /** The target's BackendKeyData: never shown to the client, used to forward its cancel requests. */
  key: { pid: number; secret: number };
  /** Bytes received after the first ReadyForQuery (normally none). */
  leftover: Buffer;
}

export interface TargetLogin {
  target: PostgresTarget;
  open: OpenTargetStream;
  /** "session" for the client's own connection; "catalog" for the gateway's lookups. */
  purpose: Extract<StreamPurpose, "session" | "catalog">;
  database: string;
  /** Extra startup parameters (application_name, client_encoding...), already filtered. */
  params?: Record<string, string>;
}

/**
 * Opens a byte stream to the target: the connector's stream, then TLS over it as `target.tls.mode` asks; and how the
 * login answers password requests on it.
 */
async function dial(
  target: PostgresTarget,
  open: OpenTargetStream,
  purpose: StreamPurpose,
): Promise<{ socket: Duplex; secret: PasswordSecret | undefined }> {
  const { socket: raw, oracle } = await open(purpose);
  const secret = oracle
    ? agentPassword(oracle)
    : target.password !== undefined
      ? heldPassword(target.password)
      : undefined;
  return { socket: await startTls(target, raw), secret };
}

async function startTls(target: PostgresTarget, socket: Duplex): Promise<Duplex> {
  const mode = target.tls?.mode ?? "disable";
  if (mode === "disable") return socket;
  socket.write(sslRequest());
  const reader = new MessageReader(socket);
  let answer: Buffer;
  try {
    answer = await reader.bytes(1);
  } finally {
    const extra = reader.detach();
    // anything after the one-byte answer would be injected by a man in the middle (CVE-2021-23222)
    if (extra.length > 0) socket.destroy();
  }
  if (socket.destroyed) throw new TargetError("unexpected bytes after the target's SSL answer");
  if (answer[0] !== 0x53 /* S */) {
    if (mode === "prefer") return socket;
    socket.destroy();
    throw new TargetError(`target ${target.host}:${target.port} does not support TLS (tls.mode: ${mode})`);
  }
  return await new Promise<Duplex>((resolve, reject) => {
    const verify = mode === "verify-full";
    const s = tlsConnect({
      socket,
      // the name verify-full checks the certificate against; without it Node checks "localhost" for an IP target
      host: target.host,
      servername: /^[\d.]+$|:/.test(target.host) ? undefined : target.host,
      rejectUnauthorized: verify,
      ...(target.tls?.ca ? { ca: target.tls.ca } : {}),
      // "require" encrypts without authenticating the server, exactly like libpq's sslmode=require
      ...(verify ? {} : { checkServerIdentity: () => undefined }),
    });
    s.once("secureConnect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/**
 * Logs in to the target with the connection's credentials (trust, cleartext, md5, SCRAM-SHA-256) and reads up to
 * its first ReadyForQuery. A password the gateway holds goes only to the target, never anywhere else; one only an
 * agent holds never reaches the gateway (the agent answers md5 and SCRAM steps; cleartext is refused).
 */
export async function connectTarget(login: TargetLogin): Promise<TargetConnection> {
  const { target } = login;
  const { socket, secret } = await dial(target, login.open, login.purpose);
  const reader = new MessageReader(socket);
  try {
    socket.write(startupMessage({ ...login.params, user: target.user, database: login.database }));
    let scram: ScramClient | undefined;
    const parameterStatus: Buffer[] = [];
    let key = { pid: 0, secret: 0 };
    for (;;) {
      const frame = await reader.typed(MAX_LOGIN_MESSAGE);
      const body = bodyOf(frame);
      switch (frame.type) {
        case "R": {
          const code = body.readInt32BE(0);
          if (code === AUTH_OK) break;
          if (secret === undefined) throw new TargetError("the target asks for a password but none is configured");
          if (code === AUTH_CLEARTEXT) {
            if (secret.cleartext === undefined)
              throw new TargetError(
                "the target asks for a cleartext password; with secrets: agent only md5 and SCRAM-SHA-256 can be used",
              );
            socket.write(passwordMessage(secret.cleartext));
          } else if (code === AUTH_MD5)
            socket.write(passwordMessage(await secret.md5(target.user, body.subarray(4, 8))));
          else if (code === AUTH_SASL) {
            const mechanisms = saslMechanisms(body.subarray(4));
            if (!mechanisms.includes("SCRAM-SHA-256")) {
              throw new TargetError(`target offers no supported SASL mechanism (${mechanisms.join(", ")})`);
            }
            scram = new ScramClient(secret);
            socket.write(saslInitialResponse("SCRAM-SHA-256", scram.first()));
          } else if (code === AUTH_SASL_CONTINUE && scram) {
            socket.write(saslResponse(await scram.final(body.toString("utf8", 4))));
          } else if (code === AUTH_SASL_FINAL && scram) {
            scram.verify(body.toString("utf8", 4));
          } else throw new TargetError(`unsupported authentication request ${code} from the target`);
          break;
        }
        case "S":
          parameterStatus.push(frame.raw);
          break;
        case "K":
          key = { pid: body.readInt32BE(0), secret: body.readInt32BE(4) };
          break;
        case "E": {
          const fields = parseErrorFields(body);
          throw new TargetError(fields.get("M") ?? "target refused the connection", fields);
        }
        case "N":
        case "v":
          break;
        case "Z":
          return { socket, parameterStatus, key, leftover: reader.detach() };
        default:
          throw new ProtocolError(`unexpected message '${frame.type}' from the target during login`);
      }
    }
  } catch (err) {
    reader.detach();
    socket.destroy();
    throw err;
  }
}

function saslMechanisms(body: Buffer): string[] {
  const out: string[] = [];
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const [name, next] = readCString(body, off);
    if (next < 0) break;
    out.push(name);
    off = next;
  }
  return out;
}

/** Sends a CancelRequest with the target's own key on a fresh connection (over TLS when the target needs it). */
export async function cancelOnTarget(
  target: PostgresTarget,
  open: OpenTargetStream,
  key: { pid: number; secret: number },
): Promise<void> {
  // a cancel request carries the target's key, not the password: the secret is not used
  const { socket } = await dial(target, open, "cancel");
  await new Promise<void>((resolve) => {
    socket.end(cancelRequest(key.pid, key.secret));
    socket.once("close", () => resolve());
    socket.once("error", () => resolve());
    socket.resume();
  });
}
