import type { Duplex } from "node:stream";
import {
  errorText,
  TargetUnreachableError,
  type OpenOptions,
  type StreamPurpose,
  type TargetConnector,
  type TargetEndpoint,
} from "../core/adapter/index.js";
import type { ConnectionConfig } from "../core/policy/schema.js";
import type { AgentRegistry } from "./registry.js";

/**
 * The gateway's one connector: a connection without `via` is dialled directly; one with `via: agent/NAME` goes
 * through a connected instance of that agent, or is refused at once when none is connected (fail closed, never
 * queued). A stream that cannot be opened through one instance is tried through the next.
 */
export class RoutingConnector implements TargetConnector {
  constructor(
    private readonly direct: TargetConnector,
    private readonly agents: AgentRegistry,
  ) {}

  async open(
    connection: ConnectionConfig,
    endpoint: TargetEndpoint,
    purpose: StreamPurpose,
    options?: OpenOptions,
  ): Promise<Duplex> {
    if (connection.via === undefined) return this.direct.open(connection, endpoint, purpose, options);
    const agent = connection.via.slice("agent/".length);
    const candidates = this.agents.serving(agent, connection.name);
    if (candidates.length === 0) {
      const seen = this.agents.lastSeen(agent);
      throw new TargetUnreachableError(
        `connection "${connection.name}" is reached via agent ${agent}, which is not connected${
          seen ? ` (last seen ${seen.toISOString()})` : " (never seen since the gateway started)"
        }`,
      );
    }
    const failures: string[] = [];
    for (const instance of candidates) {
      let stream: Duplex;
      try {
        stream = await instance.openStream(connection.name, endpoint, purpose, options?.session?.id);
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
            },
          });
        } catch (err) {
          stream.destroy();
          throw new TargetUnreachableError(`the route through agent ${agent} could not be recorded: ${errorText(err)}`);
        }
      }
      return stream;
    }
    throw new TargetUnreachableError(failures.length === 1 ? (failures[0] as string) : failures.join("; "));
  }
}
