import type { Command } from "commander";
import { formatCaseResult, loadCases, runCases } from "../core/policy/cases.js";
import { describeConfig, renderDescription } from "../core/policy/describe.js";
import { CliError } from "./cli-error.js";
import { DEFAULT_CONFIG_PATH, loadCliConfig, withConfigErrors } from "./load-config.js";

export function registerPolicyCommands(program: Command): void {
  const policy = program.command("policy").description("Validate a configuration and test its decisions");

  policy
    .command("check")
    .description("Validate the configuration and print each connection's effective rules (secrets redacted)")
    .option("-c, --config <file>", "configuration file (env GATEHOUSE_CONFIG)", DEFAULT_CONFIG_PATH)
    .option("--json", "print the effective rules as JSON")
    .action(async (opts: { config: string; json?: boolean }) => {
      const config = await loadCliConfig(opts.config);
      const description = describeConfig(config);
      process.stdout.write(opts.json ? `${JSON.stringify(description, null, 2)}\n` : renderDescription(description));
    });

  policy
    .command("test")
    .description("Check expected decisions (allow/deny/approve) for identities and requests listed in a cases file")
    .argument("<cases>", "YAML file with `cases: [{ name, identity, connection, request, expect, rule? }]`")
    .option("-c, --config <file>", "configuration file (env GATEHOUSE_CONFIG)", DEFAULT_CONFIG_PATH)
    .option("--json", "print results as JSON")
    .action(async (casesPath: string, opts: { config: string; json?: boolean }) => {
      const config = await loadCliConfig(opts.config);
      const results = await withConfigErrors(async () => runCases(config, await loadCases(casesPath), casesPath));
      const failed = results.filter((r) => !r.pass).length;
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ passed: results.length - failed, failed, results }, null, 2)}\n`);
      } else {
        for (const r of results) process.stdout.write(`${formatCaseResult(r)}\n`);
        process.stdout.write(`${results.length - failed} passed, ${failed} failed\n`);
      }
      // thrown rather than setting process.exitCode, which would leak into whoever runs main() in-process
      if (failed > 0) throw new CliError(`${failed} of ${results.length} policy test cases failed`, 1);
    });
}
