import type { ConnectionType } from "../core/policy/vocabulary.js";
import type { GatehouseConfig, HostPort } from "../core/policy/schema.js";

export interface ListenerReport {
  protocol: ConnectionType;
  /** "host:port" from `listen`, when configured. */
  address?: string;
  state: "listening" | "not configured" | "not built yet";
  /** Connections of this type in the config. */
  connections: string[];
}

interface ProtocolListener {
  protocol: ConnectionType;
  /** Which `listen` key the adapter serves on (kubernetes and http share the HTTP listener). */
  listenKey: "postgres" | "mysql" | "ssh" | "http";
  built: boolean;
  report(config: GatehouseConfig): ListenerReport;
}

function listener(
  protocol: ConnectionType,
  listenKey: ProtocolListener["listenKey"],
  built: boolean,
): ProtocolListener {
  return {
    protocol,
    listenKey,
    built,
    report(config) {
      const addr: HostPort | undefined = config.listen[listenKey];
      return {
        protocol,
        ...(addr ? { address: `${addr.host}:${addr.port}` } : {}),
        state: !built ? "not built yet" : addr ? "listening" : "not configured",
        connections: config.connections.filter((c) => c.type === protocol).map((c) => c.name),
      };
    },
  };
}

/**
 * The protocol adapters this build knows. An adapter flips `built` and starts its listener when it lands
 * (PostgreSQL, MySQL, SSH, Kubernetes, HTTP each have their own issue).
 */
export const PROTOCOL_LISTENERS: readonly ProtocolListener[] = [
  listener("postgres", "postgres", false),
  listener("mysql", "mysql", false),
  listener("ssh", "ssh", false),
  listener("kubernetes", "http", false),
  listener("http", "http", false),
];
