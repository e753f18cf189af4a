import type { ListenKey, ProtocolAdapter } from "../core/adapter/index.js";
import type { GatehouseConfig, HostPort } from "../core/policy/schema.js";
import type { ConnectionType } from "../core/policy/vocabulary.js";

export interface ListenerReport {
  protocol: ConnectionType;
  /** "host:port" from `listen` (the bound address once started), when configured. */
  address?: string;
  state: "listening" | "not configured" | "not built yet";
  /** Connections of this type in the config. */
  connections: string[];
}

/** One protocol in the registry: where it listens, and its adapter once built (loaded only when it listens). */
export interface AdapterEntry {
  protocol: ConnectionType;
  listenKey: ListenKey;
  load?: () => Promise<ProtocolAdapter>;
}

async function loadHttpAdapter(): Promise<ProtocolAdapter> {
  return (await import("../protocols/http/adapter.js")).httpAdapter;
}

/**
 * The protocol adapters this build knows. An adapter gets a `load` when it lands (PostgreSQL, MySQL, SSH,
 * Kubernetes, HTTP each have their own issue); it is imported lazily, so a gateway without that listener never
 * loads its code (or its parser's WASM).
 */
export const ADAPTERS: readonly AdapterEntry[] = [
  {
    protocol: "postgres",
    listenKey: "postgres",
    load: async () => (await import("../protocols/postgres/adapter.js")).postgresAdapter,
  },
  { protocol: "mysql", listenKey: "mysql" },
  { protocol: "ssh", listenKey: "ssh", load: async () => (await import("../protocols/ssh/adapter.js")).sshAdapter },
  // one adapter serves the HTTP listener for both: the gateway starts it once per listen address
  { protocol: "kubernetes", listenKey: "http", load: loadHttpAdapter },
  { protocol: "http", listenKey: "http", load: loadHttpAdapter },
];

export function reportListener(entry: AdapterEntry, config: GatehouseConfig, bound?: string): ListenerReport {
  const addr: HostPort | undefined = config.listen[entry.listenKey];
  return {
    protocol: entry.protocol,
    ...(bound ? { address: bound } : addr ? { address: `${addr.host}:${addr.port}` } : {}),
    state: !entry.load ? "not built yet" : addr ? "listening" : "not configured",
    connections: config.connections.filter((c) => c.type === entry.protocol).map((c) => c.name),
  };
}
