import type { Duplex } from "node:stream";
import {
  errorText,
  TargetUnreachableError,
  type CredentialOracle,
  type OpenOptions,
  type StreamPurpose,
  type TargetConnector,
  type TargetEndpoint,
} from "../core/adapter/index.js";
import type { ConnectionConfig } from "../core/policy/schema.js";
import type { AgentRegistry } from "./registry.js";
import { AGENT_CREDENTIALS } from "./wire.js";

/**
 * The gateway's one connector: a connection without `via` is dialled directly; one with `via: agent/NAME` goes
 * through a connected instance of that agent, or is refused at once when none is connected (fail closed, never
 * queued). A stream that cannot be opened through one instance is tried through the next. For a connection with
 * `secrets: agent`, only instances that hold its credentials are used, and the stream comes with the oracle of the
 * instance that carries it (`oracleFor`), so the login's secret steps go to the same agent process.
 */
export class RoutingConnector implements TargetConnector {
  readonly #oracles = new WeakMap<Duplex, CredentialOracle>();

  constructor(
    private readonly direct: TargetConnector,
    private readonly agents: AgentRegistry,
  ) {}

  oracleFor(stream: Duplex): CredentialOracle | undefined {
    return this.#oracles.get(stream);
  }

  async open(
    connection: ConnectionConfig,
    endpoint: TargetEndpoint,
    purpose: StreamPurpose,
    options?: OpenOptions,
  ): Promise<Duplex> {
    if (connection.via === undefined) return this.direct.open(connection, endpoint, purpose, options);
    const agent = connection.via.slice("agent/".length);
    const agentLogin = connection.secrets === "agent";
    const capability = AGENT_CREDENTIALS[connection.type]?.capability;
    // an http or kubernetes connection whose credential only the agent holds: the agent is its HTTP origin
    const origin = agentLogin && (connection.type === "http" || connection.type === "kubernetes") ? "http" : undefined;
    // the endpoint accepts a secrets: agent connection only from an instance that can log in to it; the capability
    // is checked again here so that nothing else could hand such a connection to an instance that cannot
    const candidates = this.agents
      .serving(agent, connection.name)
      .filter((i) => !agentLogin || (capability !== undefined && i.capabilities.includes(capability)));
    if (candidates.length === 0) {
      const seen = this.agents.lastSeen(agent);
      const connected = this.agents.instances(agent);
      if (connected.length === 0)
        throw new TargetUnreachableError(
          `connection "${connection.name}" is reached via agent ${agent}, which is not connected${
            seen ? ` (last seen ${seen.toISOString()})` : " (never seen since the gateway started)"
          }`,
        );
      // connected, but not for this connection: say why the gateway refused it (welcome's reason), if it was offered
      const reason = connected.map((i) => i.refusals.get(connection.name)).find((r) => r !== undefined);
      throw new TargetUnreachableError(
        reason ??
          `connection "${connection.name}" is reached via agent ${agent}, whose connected instances do not serve it`,
      );
    }
    const failures: string[] = [];
    for (const instance of candidates) {
      let stream: Duplex;
      try {
        stream = await instance.openStream(connection.name, endpoint, purpose, options?.session?.id, origin);
      } catch (err) {
        failures.push(errorText(err));
        continue;
      }
      if (options?.session) {
        try {
          // the session's evidence names the agent before any byte of the session crosses it
          await options.session.audit({
            type: "session.route",
            data: {
              via: connection.via,
              agent,
              instance: instance.instance,
              agent_version: instance.version,
              agent_address: instance.address,
              purpose,
              ...(agentLogin ? { credentials: "agent" } : {}),
            },
          });
        } catch (err) {
          stream.destroy();
          throw new TargetUnreachableError(`the route through agent ${agent} could not be recorded: ${errorText(err)}`);
        }
      }
      if (agentLogin && !origin) this.#oracles.set(stream, instance.oracle(connection.name));
      return stream;
    }
    throw new TargetUnreachableError(failures.length === 1 ? (failures[0] as string) : failures.join("; "));
  }
}
