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
  const closing = new Set<Promise<unknown>>();
  const server: Server = createServer({ noDelay: true, highWaterMark: 1024 * 1024 }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    void serveConnection(socket, {
      gate: opts.gate,
      verifier: opts.verifier,
      cancels,
      analyzer: opts.analyzer,
      maskerFor: opts.maskerFor,
      sampleRows: opts.sampleRows ?? 20,
      log,
      track: (p) => {
        closing.add(p);
        void p.finally(() => closing.delete(p));
      },
      tls: (remote) => ({
        ...(secureContext ? { secureContext } : {}),
        tlsRequired:
          opts.tls.require === "always" || (opts.tls.require === "remote" && !(remote && isLoopbackAddress(remote))),
      }),
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
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      // sockets closed: wait for each session's session.end and recording seal
      await new Promise((r) => setImmediate(r));
      await Promise.allSettled([...closing]);
    },
  };
}

function isLoopbackAddress(remote: string): boolean {
  return isLoopbackHost(remote.replace(/^::ffff:/, ""));
}
