import { createServer, type Server } from "node:net";
import {
  bindServer,
  clientMustUseTls,
  LiveSockets,
  loadTlsMaterial,
  PendingWork,
  secureContextFor,
  stopAccepting,
  type TargetConnector,
  type TlsMaterial,
} from "../../core/adapter/index.js";
import type { IdentityVerifier } from "../../core/identity/verifier.js";
import type { HostPort, PostgresConnectionConfig } from "../../core/policy/schema.js";
import type { Gate } from "../../core/session/gate.js";
import { CancelRegistry } from "./cancel.js";
import { serveConnection } from "./connection.js";
import type { SqlAnalyzerLike } from "./sql-reading.js";
import type { MaskerLike } from "./result-mask.js";

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
  connector: TargetConnector;
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
    ? loadTlsMaterial(opts.dataDir, "postgres", { cert: opts.tls.cert, key: opts.tls.key })
    : undefined;
  const secureContext = material ? secureContextFor(material) : undefined;
  const cancels = new CancelRegistry();
  const log = opts.log ?? (() => undefined);
  const sockets = new LiveSockets();
  // serveConnection until it returns: a login in progress (token check, session.start, target dial) ends its
  // session itself once it sees the closed socket
  const serving = new PendingWork();
  // each session's close work (session.end, recording seal)
  const closing = new PendingWork();
  const server: Server = createServer({ noDelay: true, highWaterMark: 1024 * 1024 }, (socket) => {
    sockets.add(socket);
    const served = serveConnection(socket, {
      gate: opts.gate,
      connector: opts.connector,
      verifier: opts.verifier,
      cancels,
      analyzer: opts.analyzer,
      maskerFor: opts.maskerFor,
      sampleRows: opts.sampleRows ?? 20,
      log,
      track: (p) => closing.add(p),
      tls: (remote) => ({
        ...(secureContext ? { secureContext } : {}),
        tlsRequired: clientMustUseTls(opts.tls.require, remote),
      }),
    });
    serving.add(served, (err) => log("postgres: connection failed", { err: String(err) }));
  });
  const address = await bindServer(server, opts.listen);
  return {
    address,
    ...(material ? { tls: material.source } : {}),
    get connections() {
      return sockets.size;
    },
    close: async () => {
      const stopped = stopAccepting(server);
      // the gateway closes the recorder and the audit log once this resolves
      await sockets.destroyAll();
      await stopped;
      await serving.settled();
      await closing.settled();
    },
  };
}
