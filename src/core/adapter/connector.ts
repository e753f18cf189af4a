import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ConnectionConfig } from "../policy/schema.js";

/** Where on the target's network a stream should go: the connection's target, or a side endpoint of it. */
export interface TargetEndpoint {
  host: string;
  port: number;
}

/**
 * Why an adapter opens a stream to a target. Through an agent it is recorded in the session's `session.route`
 * event and shown in the agent's log, telling a session's main stream from its side connections (PostgreSQL's
 * cancel and catalog queries).
 */
export type StreamPurpose = "session" | "cancel" | "catalog";

/**
 * The only way an adapter reaches a target. Adapters never dial sockets themselves: they ask for a byte stream to
 * a connection's target and speak their protocol over it: a TCP connection from the gateway, or with
 * `via: agent/NAME` a stream tunnelled through that agent; the adapter does not notice which.
 */
export interface TargetConnector {
  open(
    connection: ConnectionConfig,
    endpoint: TargetEndpoint,
    purpose: StreamPurpose,
    options?: OpenOptions,
  ): Promise<Duplex>;
  /**
   * For a connection with `secrets: agent`: the credential oracle of the agent instance that carries `stream` (a
   * stream this connector opened), so the login over that stream uses credentials only that agent holds. Undefined
   * for any other stream; a connector that never goes through agents need not implement it.
   */
  oracleFor?(stream: Duplex): CredentialOracle | undefined;
}

/**
 * What a target login needs from credentials the gateway does not hold (`secrets: agent`). The adapter keeps
 * driving its protocol; the holder computes only the steps that need the secret, and the secret itself never
 * leaves it. Only what the PostgreSQL and SSH logins need. Every method rejects with CredentialRefusedError when
 * the holder refuses or cannot answer.
 */
export interface CredentialOracle {
  /** PostgreSQL md5: the password message's text, "md5" + md5(md5(password + user) + salt). */
  pgMd5(user: string, salt: Buffer): Promise<string>;
  /**
   * PostgreSQL SCRAM-SHA-256 (RFC 5802): the ClientProof for `authMessage` (client-first-bare, server-first,
   * client-final-without-proof, as the adapter built them), and the ServerSignature the server must answer with.
   */
  pgScram(salt: Buffer, iterations: number, authMessage: string): Promise<ScramSignatures>;
  /** SSH: the public keys it can sign with, in the SSH wire format (RFC 4253 section 6.6). */
  sshIdentities(): Promise<Buffer[]>;
  /** SSH: the signature blob over `data` (a publickey userauth request) with the key `publicKey` names. */
  sshSign(publicKey: Buffer, data: Buffer, hash?: SshSignHash): Promise<Buffer>;
}

export interface ScramSignatures {
  proof: Buffer;
  serverSignature: Buffer;
}

/** The hash an RSA signature uses (rsa-sha2-256 / rsa-sha2-512, or ssh-rsa's sha1); other key types have their own. */
export type SshSignHash = "sha1" | "sha256" | "sha512";

/** A credential oracle refused or could not answer; `message` says why and is safe to show the client. */
export class CredentialRefusedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CredentialRefusedError";
  }
}

/** A stream to a target, and the oracle its login uses when the connection's credentials are held by an agent. */
export interface TargetStream {
  socket: Duplex;
  /** Set exactly when the connection has `secrets: agent`. */
  oracle?: CredentialOracle;
}

/**
 * Opens a stream to the connection's target with `connector` and, for `secrets: agent`, takes the oracle bound to
 * it. A connection whose credentials only an agent holds never gets a stream without one: the login could only
 * fail, so the stream is closed and the error says why.
 */
export async function openTarget(
  connector: TargetConnector,
  connection: ConnectionConfig,
  endpoint: TargetEndpoint,
  purpose: StreamPurpose,
  options?: OpenOptions,
): Promise<TargetStream> {
  const socket = await connector.open(connection, endpoint, purpose, options);
  if (connection.secrets !== "agent") return { socket };
  const oracle = connector.oracleFor?.(socket);
  if (oracle === undefined) {
    socket.destroy();
    throw new TargetUnreachableError(
      `connection "${connection.name}" keeps its credentials on ${connection.via ?? "an agent"} (secrets: agent), and the stream to it has no way to use them`,
    );
  }
  return { socket, oracle };
}

/** What a connector may need besides the address. */
export interface OpenOptions {
  /**
   * The session the stream serves. A connector that carries the stream through something the session's evidence
   * must name (an agent) records that in the session's audit log before handing the stream over.
   */
  session?: RouteEvidence;
}

/** The part of a gated session a connector uses: its id, and appending an audit event in its name. */
export interface RouteEvidence {
  readonly id: string;
  audit(event: { type: string; data?: Record<string, unknown> }): Promise<unknown>;
}

/** A stream could not be opened; `message` names the endpoint and is safe to show the client (no secrets). */
export class TargetUnreachableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TargetUnreachableError";
  }
}

/** Dials targets directly over TCP. */
export class DirectConnector implements TargetConnector {
  constructor(private readonly timeoutMs = 10_000) {}

  open(connection: ConnectionConfig, endpoint: TargetEndpoint): Promise<Duplex> {
    if (connection.via !== undefined) {
      // a connection behind an agent is never dialled directly, even if a direct route happens to exist
      return Promise.reject(
        new TargetUnreachableError(
          `connection "${connection.name}" is reached via ${connection.via}, and this connector dials only directly`,
        ),
      );
    }
    return dialTcp(endpoint, this.timeoutMs);
  }
}

/** A TCP connection with Nagle off, or TargetUnreachableError (refused, unreachable, or no answer in time). */
export function dialTcp(endpoint: TargetEndpoint, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const where = `${endpoint.host}:${endpoint.port}`;
    const socket = connect({ host: endpoint.host, port: endpoint.port });
    const timer = setTimeout(
      () => socket.destroy(new TargetUnreachableError(`timed out connecting to ${where}`)),
      timeoutMs,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(
        err instanceof TargetUnreachableError
          ? err
          : new TargetUnreachableError(`cannot connect to ${where}: ${err.message}`, { cause: err }),
      );
    };
    socket.once("error", fail);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", fail);
      // Nagle on a request/response proxy costs ~40 ms per small write (DEPENDENCIES.md: 92 vs 8,498 TPS)
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
