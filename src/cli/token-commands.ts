import type { Command } from "commander";

// Placeholder until the token commands are written.
export function registerTokenCommands(_program: Command): void {}
