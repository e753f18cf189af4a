import { ConfigError } from "../core/policy/errors.js";
import { loadConfig } from "../core/policy/loader.js";
import type { GatehouseConfig } from "../core/policy/schema.js";
import { CliError } from "./cli-error.js";

/** `--config` default for every command that reads the configuration. */
export const DEFAULT_CONFIG_PATH = process.env["GATEHOUSE_CONFIG"] ?? "gatehouse.yaml";

/** Config problems are expected failures: one line naming file and path, exit 1. */
export async function withConfigErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 1);
    throw err;
  }
}

export function loadCliConfig(path: string): Promise<GatehouseConfig> {
  return withConfigErrors(() => loadConfig(path));
}
