import type { Server, Socket } from "node:net";
import type { HostPort } from "../policy/schema.js";

/** Listens on `at`; resolves with the address actually bound ("host:port", IPv6 in brackets). */
export async function bindServer(server: Server, at: HostPort): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  if (!addr || typeof addr !== "object") return `${at.host}:${at.port}`;
  return `${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
}

/** Stops accepting; resolves when the server has closed (every connection it accepted is gone). */
export function stopAccepting(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * The work a listener must wait for before it may report itself closed: each session's end (session.end, recording
 * seal) and each connection being served. Work may be added while close() waits, and is waited for too.
 */
export class PendingWork {
  readonly #pending = new Set<Promise<unknown>>();

  /** Tracks `work` until it settles; a rejection is passed to `onError` (never left unhandled). */
  add(work: Promise<unknown>, onError: (err: unknown) => void = () => undefined): void {
    this.#pending.add(work);
    work.then(
      () => this.#pending.delete(work),
      (err: unknown) => {
        this.#pending.delete(work);
        onError(err);
      },
    );
  }

  /** Resolves once nothing is pending, including work added meanwhile. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }
}

/** The live client sockets of a listener, so that close() can end each and wait for its 'close' handlers. */
export class LiveSockets {
  readonly #sockets = new Set<Socket>();

  add(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  get size(): number {
    return this.#sockets.size;
  }

  /**
   * Destroys every socket and waits for each one's 'close' event: its handlers (which end its session) run on a
   * later turn of the event loop, possibly after the server's own close callback.
   */
  async destroyAll(): Promise<void> {
    await Promise.all([...this.#sockets].map(destroyAndWait));
  }
}

function destroyAndWait(socket: Socket): Promise<void> {
  // not events.once: that rejects on an 'error' before the 'close'
  const closed = socket.closed ? Promise.resolve() : new Promise<void>((r) => socket.once("close", () => r()));
  socket.destroy();
  return closed;
}
