import type { Command } from "commander";
import { GatehouseAgent } from "../agent/agent.js";
import { loadAgentConfig } from "../agent/config.js";
import { agentListenerPin } from "../agent/endpoint.js";
import type { AgentStatus } from "../agent/registry.js";
import { ConfigError } from "../core/policy/errors.js";
import { VERSION } from "../server/gateway.js";
import { callApi, withApiOptions, type ApiOptions } from "./api-client.js";
import { CliError } from "./cli-error.js";
import { DEFAULT_CONFIG_PATH, loadCliConfig } from "./load-config.js";
import { untilSignal } from "./serve-commands.js";

export function registerAgentCommands(program: Command): void {
  program
    .command("agent")
    .description("run an agent near the targets: it dials the gateway and carries the streams of its connections")
    .requiredOption("-c, --config <file>", "the agent's configuration (agent.yaml)")
    .action(async (opts: { config: string }) => {
      let config;
      try {
        config = await loadAgentConfig(opts.config);
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message, 1);
        throw err;
      }
      const agent = new GatehouseAgent(config, { version: VERSION });
      const stopped = untilSignal();
      agent.start();
      const where = `${config.gateway.address.host}:${config.gateway.address.port}`;
      process.stdout.write(
        `gatehouse agent ${config.name}: dialling ${where} for ${config.connections.map((c) => c.name).join(", ")}\n`,
      );
      await stopped;
      await agent.stop();
    });

  const agents = program.command("agents").description("the gateway's agents");
  withApiOptions(
    agents
      .command("ls")
      .description("agents, their connections, state and last seen (against a running gateway)")
      .option("--json", "machine-readable output"),
  ).action(async (opts: ApiOptions & { json?: boolean }) => {
    const res = await callApi<{ agents: AgentStatus[] }>(opts, "GET", "/api/agents");
    if (opts.json) return write(JSON.stringify(res.agents, null, 2));
    if (res.agents.length === 0) return write("no agents configured (agents.tokens)");
    for (const a of res.agents) {
      write(
        `${a.name}  ${a.state}  last seen ${a.last_seen ?? "never"}  connections: ${a.connections.join(", ") || "none"}`,
      );
      for (const i of a.instances)
        write(
          `  ${i.instance}  v${i.version}  from ${i.address}  since ${i.connected_at}  open streams ${i.open_streams}`,
        );
    }
  });

  agents
    .command("pin")
    .description("print the agent listener's key pin, for an agent's gateway.pin (generates the key if needed)")
    .option("-c, --config <file>", "configuration file (env GATEHOUSE_CONFIG)", DEFAULT_CONFIG_PATH)
    .action(async (opts: { config: string }) => {
      const config = await loadCliConfig(opts.config);
      write(agentListenerPin(config));
    });
}

function write(line: string): void {
  process.stdout.write(`${line}\n`);
}
