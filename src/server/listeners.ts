import type { IdentityVerifier } from "../core/identity/verifier.js";
import type { ConnectionType } from "../core/policy/vocabulary.js";
import type { GatehouseConfig, HostPort } from "../core/policy/schema.js";
import type { Gate } from "../core/session/gate.js";

export interface ListenerReport {
  protocol: ConnectionType;
  /** "host:port" from `listen` (the bound address once started), when configured. */
  address?: string;
  state: "listening" | "not configured" | "not built yet";
  /** Connections of this type in the config. */
  connections: string[];
}

/** What a protocol adapter gets from the gateway: the one gate every request passes, and identity. */
export interface ListenerContext {
  config: GatehouseConfig;
  gate: Gate;
  verifier: IdentityVerifier;
  listen: HostPort;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface RunningListener {
  protocol: ConnectionType;
  /** "host:port" actually bound. */
  address: string;
  /** Stops accepting, ends live sessions and waits for their evidence. */
  close(): Promise<void>;
}

interface ProtocolListener {
  protocol: ConnectionType;
  /** Which `listen` key the adapter serves on (kubernetes and http share the HTTP listener). */
  listenKey: "postgres" | "mysql" | "ssh" | "http";
  /** Present once the adapter is built; imported lazily so a gateway without that listener never loads it. */
  start?: (ctx: ListenerContext) => Promise<RunningListener>;
  report(config: GatehouseConfig, bound?: string): ListenerReport;
}

function listener(
  protocol: ConnectionType,
  listenKey: ProtocolListener["listenKey"],
  start?: ProtocolListener["start"],
): ProtocolListener {
  return {
    protocol,
    listenKey,
    ...(start ? { start } : {}),
    report(config, bound) {
      const addr: HostPort | undefined = config.listen[listenKey];
      return {
        protocol,
        ...(bound ? { address: bound } : addr ? { address: `${addr.host}:${addr.port}` } : {}),
        state: !start ? "not built yet" : addr ? "listening" : "not configured",
        connections: config.connections.filter((c) => c.type === protocol).map((c) => c.name),
      };
    },
  };
}

async function startPostgres(ctx: ListenerContext): Promise<RunningListener> {
  const [{ startPostgresListener }, { PostgresSqlAnalyzer }, { Masker, COLUMN_MASK }] = await Promise.all([
    import("../protocols/postgres/server.js"),
    import("../core/inspect/postgres-sql/index.js"),
    import("../core/masking/index.js"),
  ]);
  const analyzer = await PostgresSqlAnalyzer.load();
  // one compiled masker per connection config, shared by its sessions
  const maskers = new Map<object, ReturnType<typeof Masker.from>>();
  const tls = ctx.config.postgres.tls;
  const running = await startPostgresListener({
    listen: ctx.listen,
    gate: ctx.gate,
    verifier: ctx.verifier,
    dataDir: ctx.config.data,
    tls: {
      enabled: tls.enabled,
      require: tls.require,
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
    },
    analyzer,
    maskerFor: (connection) => {
      let masker = maskers.get(connection);
      if (!masker) {
        masker = Masker.from(connection.masking);
        maskers.set(connection, masker);
      }
      return masker.enabled ? { masker, maskText: COLUMN_MASK } : undefined;
    },
    log: ctx.log,
  });
  return { protocol: "postgres", address: running.address, close: () => running.close() };
}

async function startSsh(ctx: ListenerContext): Promise<RunningListener> {
  const { startSshListener } = await import("../protocols/ssh/index.js");
  return startSshListener(ctx);
}

/**
 * The protocol adapters this build knows. An adapter gets a `start` when it lands (PostgreSQL, MySQL, SSH,
 * Kubernetes, HTTP each have their own issue).
 */
export const PROTOCOL_LISTENERS: readonly ProtocolListener[] = [
  listener("postgres", "postgres", startPostgres),
  listener("mysql", "mysql"),
  listener("ssh", "ssh", startSsh),
  listener("kubernetes", "http"),
  listener("http", "http"),
];
