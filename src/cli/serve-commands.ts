import type { Command } from "commander";
import { relative } from "node:path";
import type { HostPort } from "../core/policy/schema.js";
import { startDemo } from "../server/demo.js";
import { Gateway } from "../server/gateway.js";
import { CliError } from "./cli-error.js";
import { DEFAULT_CONFIG_PATH, loadCliConfig } from "./load-config.js";

export function registerServeCommands(program: Command): void {
  program
    .command("serve")
    .description("run the gateway: all configured listeners and the admin API")
    .option("-c, --config <file>", "configuration file (env GATEHOUSE_CONFIG)", DEFAULT_CONFIG_PATH)
    .action(async (opts: { config: string }) => {
      const config = await loadCliConfig(opts.config);
      const gateway = await startOrExplain(() => Gateway.start(config));
      const lines = [`gatehouse: admin API on http://${gateway.api.address}, data in ${config.data}`];
      for (const l of gateway.listeners) {
        if (l.connections.length === 0 && !l.address) continue;
        lines.push(
          `  ${l.protocol}: ${l.state}${l.address ? ` (${l.address})` : ""}; connections: ${l.connections.join(", ") || "none"}`,
        );
      }
      if (gateway.agentEndpoint)
        lines.push(`  agents: listening (${gateway.agentEndpoint.address}); pin: ${gateway.agentEndpoint.pin}`);
      // listen for signals before telling anyone we are up, so an immediate Ctrl-C still stops cleanly
      const stopped = untilSignal();
      process.stdout.write(`${lines.join("\n")}\n`);
      await stopped;
      await gateway.stop("signal");
    });

  program
    .command("demo")
    .description("run the gateway on embedded defaults with a demo identity, and print what to try")
    .option("--data <dir>", "where the demo keeps its store, keys and config", "./data/demo")
    .option("--api <host:port>", "admin API address", "127.0.0.1:18000")
    .option("--postgres <host:port>", "PostgreSQL listener address", "127.0.0.1:15432")
    .action(async (opts: { data: string; api: string; postgres: string }) => {
      const cli = `node ${relative(process.cwd(), process.argv[1] ?? "bin/gatehouse.js") || "bin/gatehouse.js"}`;
      const demo = await startOrExplain(() =>
        startDemo({ dataDir: opts.data, api: parseHostPort(opts.api), postgres: parseHostPort(opts.postgres), cli }),
      );
      const stopped = untilSignal();
      process.stdout.write(`${demo.walkthrough}\n`);
      await stopped;
      await demo.stop();
    });
}

function parseHostPort(text: string): HostPort {
  const m = /^(.+):(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m?.[1] || !(port >= 0 && port <= 65535)) throw new CliError(`invalid address "${text}" (expected host:port)`);
  return { host: m[1].replace(/^\[|\]$/g, ""), port };
}

/** A port in use or an unreadable data dir is an operator error: say so in one line. */
async function startOrExplain<T>(start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (e.code === "EADDRINUSE") throw new CliError(`cannot listen on ${e.address}:${e.port}: address already in use`);
    if (e.code === "EACCES" || e.code === "EROFS") throw new CliError(`cannot start: ${e.message}`);
    throw err;
  }
}

export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve(signal);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
