import type { Socket } from "node:net";
import {
  bindServer,
  clientMustUseTls,
  LiveSockets,
  loadTlsMaterial,
  PendingWork,
  secureContextFor,
  stopAccepting,
  type AdapterContext,
  type ProtocolAdapter,
  type RunningAdapter,
} from "../../core/adapter/index.js";
import { loadShellAnalyzer, type ShellAnalyzer } from "../../core/inspect/shell/index.js";
import type { Masker } from "../../core/masking/index.js";
import type { KubernetesConnectionConfig } from "../../core/policy/schema.js";
import { ClientSessions } from "./client-sessions.js";
import { handleExchange, type ExchangeDeps } from "./exchange.js";
import { httpProfile } from "./http-profile.js";
import { newHttpServer, sniffingListener } from "./listener.js";
import type { ConnectionProfile } from "./profile.js";
import { HTTP_REFUSALS } from "./refusals.js";
import { Router, type HttpFamilyConnection } from "./router.js";
import { TargetClient } from "./target-client.js";
import type { kubernetesProfile as KubernetesProfileFn } from "./kubernetes-profile.js";
import { handleUpgrade } from "./upgrade.js";

/**
 * The HTTP listener: HTTP connections and Kubernetes connections, routed by path prefix (or host name), one port for
 * HTTP and HTTPS. docs/http.md and docs/kubernetes.md.
 */
export const httpAdapter: ProtocolAdapter<number> = {
  protocol: "http",
  listenKey: "http",
  refusals: HTTP_REFUSALS,
  async start(ctx: AdapterContext): Promise<RunningAdapter> {
    const tlsConfig = ctx.config.http.tls;
    const material = tlsConfig.enabled ? loadTlsMaterial(ctx.config.data, "http", tlsConfig) : undefined;
    const secureContext = material ? secureContextFor(material) : undefined;
    const closing = new PendingWork();
    const sockets = new LiveSockets();
    const clients = new WeakMap<Socket, ClientSessions>();
    const compiled = new Map<HttpFamilyConnection, { profile: ConnectionProfile; target: TargetClient }>();
    // Kubernetes' code and the shell parser (exec commands, typed lines) load only when a connection needs them
    const kubernetes = ctx.config.connections.some((c) => c.type === "kubernetes")
      ? { ...(await import("./kubernetes-profile.js")), analyzer: await loadShellAnalyzer() }
      : undefined;

    const deps: ExchangeDeps = {
      router: new Router(ctx.config.connections),
      connection(config) {
        let c = compiled.get(config);
        if (!c) {
          const masker = ctx.maskers.for(config);
          const profile =
            config.type === "kubernetes"
              ? kubernetesProfileFor(kubernetes, config, masker)
              : httpProfile(config, masker);
          c = { profile, target: new TargetClient(config, ctx.connector) };
          compiled.set(config, c);
        }
        return c;
      },
      authFailed: (client, code, message, connection) =>
        ctx.gate.authFailed({
          protocol: "http",
          ...(connection !== undefined ? { connection } : {}),
          clientAddress: client.clientAddress,
          code,
          message,
        }),
      log: ctx.log,
    };
    const clientOf = (socket: Socket): ClientSessions => {
      // a TLS connection's HTTP socket is the TLSSocket; its sessions belong to the TCP connection under it
      let client = clients.get(socket);
      if (!client) {
        client = new ClientSessions(
          { gate: ctx.gate, verifier: ctx.verifier, track: (p) => closing.add(p), log: ctx.log },
          socket,
        );
        clients.set(socket, client);
      }
      return client;
    };

    const http = newHttpServer();
    http.on("request", (req, res) => {
      closing.add(handleExchange(deps, clientOf(req.socket), req, res), (err) => {
        ctx.log("http: a request failed", { err: String(err) });
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    });
    http.on("upgrade", (req, socket: Socket, head: Buffer) => {
      closing.add(handleUpgrade(deps, clientOf(req.socket), req, socket, head), (err) => {
        ctx.log("http: an upgrade failed", { err: String(err) });
        socket.destroy();
      });
    });
    const server = sniffingListener(http, {
      secureContext,
      tlsRequired: (remote) => clientMustUseTls(tlsConfig.require, remote),
      onSocket: (s) => sockets.add(s),
    });
    const address = await bindServer(server, ctx.listen);
    ctx.log("http listener started", { address, tls: material?.source ?? "off" });
    return {
      address,
      close: async () => {
        const stopped = stopAccepting(server);
        http.closeAllConnections();
        await sockets.destroyAll();
        await stopped;
        await closing.settled();
      },
    };
  },
};

function kubernetesProfileFor(
  loaded: { kubernetesProfile: typeof KubernetesProfileFn; analyzer: ShellAnalyzer } | undefined,
  config: KubernetesConnectionConfig,
  masker: Masker | undefined,
): ConnectionProfile {
  // loaded whenever the config has a kubernetes connection, and only those reach here
  if (!loaded) throw new Error("kubernetes support was not loaded");
  return loaded.kubernetesProfile(config, masker, loaded.analyzer);
}
