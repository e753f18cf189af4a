import { Command, CommanderError } from "commander";
import { registerAgentCommands } from "./agent-commands.js";
import { registerApprovalCommands } from "./approval-commands.js";
import { registerAuditCommands } from "./audit-commands.js";
import { registerKubeconfigCommands } from "./kubeconfig-commands.js";
import { registerPolicyCommands } from "./policy-commands.js";
import { registerReplayCommands } from "./replay-commands.js";
import { registerServeCommands } from "./serve-commands.js";
import { registerTokenCommands } from "./token-commands.js";
import { CliError } from "./cli-error.js";

export function buildProgram(): Command {
  const program = new Command("gatehouse")
    .description("Identity-aware access gateway for non-human clients")
    .showHelpAfterError(false)
    .exitOverride();
  registerServeCommands(program);
  registerPolicyCommands(program);
  registerAuditCommands(program);
  registerReplayCommands(program);
  registerTokenCommands(program);
  registerApprovalCommands(program);
  registerKubeconfigCommands(program);
  registerAgentCommands(program);
  return program;
}

/** Runs the CLI and returns the exit code. Every failure becomes one line on stderr and a non-zero code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are "errors" to commander but successes to the user
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
      return err.exitCode || 2;
    }
    if (err instanceof CliError) {
      process.stderr.write(`gatehouse: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`gatehouse: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
