import type { Duplex } from "node:stream";
import type { CredentialOracle, StreamPurpose, TargetEndpoint } from "../core/adapter/index.js";
import type { GatehouseConfig } from "../core/policy/schema.js";

/** One running agent process, connected to this gateway over one tunnel. */
export interface AgentInstance {
  readonly name: string;
  /** The process's own id (several processes may run under one agent name, for spread and failover). */
  readonly instance: string;
  readonly version: string;
  /** Where the tunnel comes from ("10.0.0.9:40112"). */
  readonly address: string;
  readonly tunnel: number;
  readonly capabilities: readonly string[];
  /** Connections the gateway accepted from what the agent announced. */
  readonly connections: ReadonlySet<string>;
  /** Connections it announced that the gateway refused, with the reason (as in welcome's `refused`). */
  readonly refusals: ReadonlyMap<string, string>;
  readonly connectedAt: Date;
  lastSeen: Date;
  /** Target streams open now. */
  readonly openStreams: number;
  /**
   * A target stream for `connection`. `origin: "http"` asks the agent to serve it as the HTTP origin of a
   * `secrets: agent` http or kubernetes connection (the gateway speaks plain HTTP/1.1 on it; the agent adds the
   * credential to each request), instead of a byte stream to the target.
   */
  openStream(
    connection: string,
    endpoint: TargetEndpoint,
    purpose: StreamPurpose,
    sessionId?: string,
    origin?: "http",
  ): Promise<Duplex>;
  /**
   * The credential oracle of this instance for `connection` (`secrets: agent`): the login steps that need a secret
   * only the agent holds. Only for connections the gateway accepted from this instance with their credentials.
   */
  oracle(connection: string): CredentialOracle;
}

/** What `gatehouse agents ls` shows for one configured agent. */
export interface AgentStatus {
  name: string;
  state: "connected" | "offline";
  /** Connections assigned to it in the config (`via: agent/NAME`). */
  connections: string[];
  last_seen?: string;
  instances: {
    instance: string;
    version: string;
    address: string;
    tunnel: number;
    capabilities: string[];
    connections: string[];
    connected_at: string;
    last_seen: string;
    open_streams: number;
  }[];
}

/**
 * The gateway's live view of its agents: which instances are connected, what each serves, and when each agent was
 * last heard from. Choosing an instance for a stream spreads load (fewest open streams first) and gives the
 * connector an order to fail over in.
 */
export class AgentRegistry {
  readonly #instances = new Map<string, Set<AgentInstance>>();
  readonly #lastSeen = new Map<string, Date>();
  #turn = 0;

  constructor(private readonly config: GatehouseConfig) {}

  add(instance: AgentInstance): void {
    let set = this.#instances.get(instance.name);
    if (!set) this.#instances.set(instance.name, (set = new Set()));
    set.add(instance);
    this.#lastSeen.set(instance.name, instance.lastSeen);
  }

  remove(instance: AgentInstance): void {
    this.#instances.get(instance.name)?.delete(instance);
    this.seen(instance);
  }

  seen(instance: AgentInstance): void {
    const prev = this.#lastSeen.get(instance.name);
    if (!prev || instance.lastSeen > prev) this.#lastSeen.set(instance.name, instance.lastSeen);
  }

  lastSeen(agent: string): Date | undefined {
    return this.#lastSeen.get(agent);
  }

  /** Connected instances of `agent`, whatever they serve. */
  instances(agent: string): AgentInstance[] {
    return [...(this.#instances.get(agent) ?? [])];
  }

  /** Instances of `agent` that serve `connection`, fewest open streams first (ties rotate). */
  serving(agent: string, connection: string): AgentInstance[] {
    const all = [...(this.#instances.get(agent) ?? [])].filter((i) => i.connections.has(connection));
    if (all.length > 1) {
      const shift = this.#turn++ % all.length;
      const rotated = [...all.slice(shift), ...all.slice(0, shift)];
      return rotated.sort((a, b) => a.openStreams - b.openStreams);
    }
    return all;
  }

  status(): AgentStatus[] {
    return this.config.agents.tokens.map(({ name }) => {
      const live = [...(this.#instances.get(name) ?? [])];
      const seen = live.reduce<Date | undefined>(
        (latest, i) => (!latest || i.lastSeen > latest ? i.lastSeen : latest),
        this.#lastSeen.get(name),
      );
      return {
        name,
        state: live.length > 0 ? "connected" : "offline",
        connections: this.config.connections.filter((c) => c.via === `agent/${name}`).map((c) => c.name),
        ...(seen ? { last_seen: seen.toISOString() } : {}),
        instances: live.map((i) => ({
          instance: i.instance,
          version: i.version,
          address: i.address,
          tunnel: i.tunnel,
          capabilities: [...i.capabilities],
          connections: [...i.connections],
          connected_at: i.connectedAt.toISOString(),
          last_seen: i.lastSeen.toISOString(),
          open_streams: i.openStreams,
        })),
      };
    });
  }
}
