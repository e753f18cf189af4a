/**
 * The lint rules that keep classes of defects out of src/ are themselves tested: the repository's real ESLint
 * config is run over probe code placed at a real source path (the type-aware rules need a file of the project).
 */
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

const eslint = new ESLint({ cwd: new URL("../..", import.meta.url).pathname });

async function ruleHits(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  const fatal = result?.messages.find((m) => m.fatal);
  if (fatal) throw new Error(`probe did not parse: ${fatal.message}`);
  return (result?.messages ?? []).map((m) => `${m.line}:${m.ruleId ?? "?"}`);
}

describe("lint rules", () => {
  it("refuses a floating promise in src/, with or without `void`", async () => {
    const code = [
      "async function work(): Promise<void> {}",
      "export function probe(): void {",
      "  void work();",
      "  work();",
      "  work().catch(() => undefined);",
      "}",
      "",
    ].join("\n");
    const hits = await ruleHits(code, "src/protocols/ssh/connection.ts");
    expect(hits).toEqual(["3:@typescript-eslint/no-floating-promises", "4:@typescript-eslint/no-floating-promises"]);
  }, 60_000);

  it("refuses an adapter importing the server, the API, the CLI or another adapter; the core is fine", async () => {
    const code = [
      'import type { Gateway } from "../../server/gateway.js";',
      'import type { ApiServer } from "../../api/server.js";',
      'import type { CliError } from "../../cli/cli-error.js";',
      'import type { SshClientDeps } from "../ssh/connection.js";',
      'import type { Gate } from "../../core/session/gate.js";',
      'import type { FrontendPipeline } from "./frontend.js";',
      "export type Probe = [Gateway, ApiServer, CliError, SshClientDeps, Gate, FrontendPipeline];",
      "",
    ].join("\n");
    const hits = await ruleHits(code, "src/protocols/postgres/connection.ts");
    expect(hits).toEqual([1, 2, 3, 4].map((line) => `${line}:no-restricted-imports`));
  }, 60_000);
});
