import type { Command } from "commander";

// Placeholder until the serve commands are written.
export function registerServeCommands(_program: Command): void {}
