import type { Command } from "commander";

// Placeholder until the policy commands are written.
export function registerPolicyCommands(_program: Command): void {}
