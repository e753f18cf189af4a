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
