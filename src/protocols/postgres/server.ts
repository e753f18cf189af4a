import { createServer, type Server, type Socket } from "node:net";
import type { IdentityVerifier } from "../../core/identity/verifier.js";
import { isLoopbackHost, type HostPort, type PostgresConnectionConfig } from "../../core/policy/schema.js";
import type { Gate } from "../../core/session/gate.js";
import { CancelRegistry } from "./cancel.js";
import { serveConnection } from "./connection.js";
import type { SqlAnalyzerLike } from "./frontend.js";
import type { MaskerLike } from "./result-mask.js";
import { loadTlsMaterial, secureContextFor, type TlsMaterial } from "./tls.js";

export interface PostgresTlsSettings {
  enabled: boolean;
  cert?: string;
  key?: string;
  /** remote: TLS required unless the client is on loopback; always; never. */
  require: "remote" | "always" | "never";
}

export interface PostgresListenerOptions {
  listen: HostPort;
  gate: Gate;
  verifier: IdentityVerifier;
  dataDir: string;
  tls: PostgresTlsSettings;
  analyzer: SqlAnalyzerLike;
  maskerFor: (connection: PostgresConnectionConfig) => { masker: MaskerLike; maskText: string } | undefined;
  /** Rows per result kept in the session recording (default 20). */
  sampleRows?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface PostgresListener {
  /** "host:port" actually bound. */
  address: string;
  tls?: TlsMaterial["source"];
  /** Live client connections. */
  readonly connections: number;
  close(): Promise<void>;
}

/** Starts the PostgreSQL listener: one `serveConnection` per accepted socket, isolated from the others. */
export async function startPostgresListener(opts: PostgresListenerOptions): Promise<PostgresListener> {
  const material = opts.tls.enabled
    ? loadTlsMaterial(opts.dataDir, {
        ...(opts.tls.cert ? { cert: opts.tls.cert } : {}),
        ...(opts.tls.key ? { key: opts.tls.key } : {}),
      })
    : undefined;
  const secureContext = material ? secureContextFor(material) : undefined;
  const cancels = new CancelRegistry();
  const log = opts.log ?? (() => undefined);
  const sockets = new Set<Socket>();
  // serveConnection until it returns: a login in progress (token check, session.start, target dial) ends its
  // session itself once it sees the closed socket
  const serving = new Set<Promise<void>>();
  // each session's close work (session.end, recording seal)
  const closing = new Set<Promise<unknown>>();
  const server: Server = createServer({ noDelay: true, highWaterMark: 1024 * 1024 }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const served = serveConnection(socket, {
      gate: opts.gate,
      verifier: opts.verifier,
      cancels,
      analyzer: opts.analyzer,
      maskerFor: opts.maskerFor,
      sampleRows: opts.sampleRows ?? 20,
      log,
      track: (p) => {
        closing.add(p);
        const done = () => void closing.delete(p);
        p.then(done, done);
      },
      tls: (remote) => ({
        ...(secureContext ? { secureContext } : {}),
        tlsRequired:
          opts.tls.require === "always" || (opts.tls.require === "remote" && !(remote && isLoopbackAddress(remote))),
      }),
    });
    serving.add(served);
    const forget = () => void serving.delete(served);
    served.then(forget, (err: unknown) => {
      log("postgres: connection failed", { err: String(err) });
      forget();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.listen.port, opts.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  const address =
    addr && typeof addr === "object"
      ? `${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`
      : `${opts.listen.host}:${opts.listen.port}`;
  return {
    address,
    ...(material ? { tls: material.source } : {}),
    get connections() {
      return sockets.size;
    },
    close: async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // A destroyed socket emits 'close' (whose handlers end its session) on a later turn of the event loop,
      // possibly after the server's own close callback: wait for each of them. The gateway closes the recorder
      // and the audit log once this resolves.
      await Promise.all([...sockets].map(destroyAndWait));
      await stopped;
      await Promise.allSettled([...serving]);
      // a session close may start while an earlier one is awaited
      while (closing.size > 0) await Promise.allSettled([...closing]);
    },
  };
}

function destroyAndWait(socket: Socket): Promise<void> {
  // not events.once: that rejects on an 'error' before the 'close'
  const closed = socket.closed ? Promise.resolve() : new Promise<void>((r) => socket.once("close", () => r()));
  socket.destroy();
  return closed;
}

function isLoopbackAddress(remote: string): boolean {
  return isLoopbackHost(remote.replace(/^::ffff:/, ""));
}
