import type { Command } from "commander";

// Placeholder until the audit commands are written.
export function registerAuditCommands(_program: Command): void {}
