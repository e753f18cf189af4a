import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ConnectionConfig } from "../policy/schema.js";

/** Where on the target's network a stream should go: the connection's target, or a side endpoint of it. */
export interface TargetEndpoint {
  host: string;
  port: number;
}

/**
 * Why an adapter opens a stream to a target. Recorded nowhere today; the agent will use it to tell a session's
 * main stream from its side connections (PostgreSQL's cancel and catalog queries) in its own status.
 */
export type StreamPurpose = "session" | "cancel" | "catalog";

/**
 * The only way an adapter reaches a target. Adapters never dial sockets themselves: they ask for a byte stream to
 * a connection's target and speak their protocol over it. Today that is a TCP connection from the gateway; with
 * `via: agent/NAME` it will be a stream tunnelled through that agent, and the adapter will not notice.
 */
export interface TargetConnector {
  open(connection: ConnectionConfig, endpoint: TargetEndpoint, purpose: StreamPurpose): Promise<Duplex>;
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
      // config load refuses `via` until agents exist; this keeps a direct dial from ever ignoring it
      return Promise.reject(
        new TargetUnreachableError(
          `connection "${connection.name}" is reached via ${connection.via}, which this gateway cannot do`,
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
