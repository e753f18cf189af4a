/**
 * The gateway as a separate OS process (`gatehouse serve`), for tests that kill it or starve its disk. It runs
 * the CLI from sources through tsx (test/e2e/approvals/cli.ts), so a stale dist/ cannot make a test pass or fail.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { withEvidenceReader } from "../../../src/cli/read-store.js";
import {
  freePort,
  freePorts,
  gatewayYaml,
  pgConnectionYaml,
  sshConnectionYaml,
  testPgTarget,
  testSshTarget,
} from "../../support/gateway-config.js";
import { services } from "../../support/services.js";

// still exported from here for the robustness tests
export { freePort };

const CLI = join(import.meta.dirname, "..", "approvals", "cli.ts");

export interface GatewayProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  /** The admin API's base URL (http://host:port). */
  api: string;
  output: () => string;
  /** Resolves with the exit code or signal. */
  exited: Promise<number | NodeJS.Signals>;
}

/**
 * Writes a config with one app-db connection to the test PostgreSQL (SCRAM user), and with `ssh` also an SSH listener
 * and an app-host connection to the test OpenSSH server; returns its path, the token and the SSH listener's port.
 */
export async function writeConfig(
  dir: string,
  dataDir: string,
  extra = "",
  o: { ssh?: boolean } = {},
): Promise<{ path: string; token: string; sshPort?: number }> {
  const bot = generateStaticToken();
  const path = join(dir, "gatehouse.yaml");
  const [api, postgres, ssh] = await freePorts(3);
  const sshPort = o.ssh ? ssh : undefined;
  writeFileSync(
    path,
    gatewayYaml({
      listen: { api: api as number, postgres: postgres as number, ...(sshPort ? { ssh: sshPort } : {}) },
      data: dataDir,
      tokens: [{ name: "ci-bot", sha256: bot.sha256, groups: ["ci"] }],
      connections: [
        pgConnectionYaml(testPgTarget(services()), { group: "ci" }),
        ...(sshPort ? [sshConnectionYaml(testSshTarget(services()), { group: "ci" })] : []),
      ],
      top: extra,
    }),
  );
  return { path, token: bot.token, ...(sshPort ? { sshPort } : {}) };
}

/** Starts `gatehouse serve --config F` and waits for its PostgreSQL listener's address on stdout. */
export async function startGatewayProcess(config: string): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "serve", "--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.on("exit", (code, signal) => resolve(signal ?? code ?? -1)),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start within 30 s:\n${out}`)), 30_000);
    const check = () => {
      const m = /postgres: \w+ \(127\.0\.0\.1:(\d+)\)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on("data", check);
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${how}) before it listened:\n${out}`));
    });
  });
  const api = /admin API on (http:\/\/[^,\s]+)/.exec(out)?.[1] ?? "";
  return { child, pid: child.pid ?? -1, port, api, output: () => out, exited };
}

/** Runs the CLI (`audit verify ...`) and returns its exit code and output. */
export function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Every audit record in a data directory, with its index first brought up to date with the evidence log. */
export function readAudit(dataDir: string): Promise<AuditRecord[]> {
  return withEvidenceReader(dataDir, async (store) => {
    const out: AuditRecord[] = [];
    for await (const r of store.iterateAudit({ fromSeq: 1 })) out.push(r);
    return out;
  });
}

/** The statement text of a `log_statement=all` line ("... LOG:  statement: TEXT"), if it is one. */
export function loggedStatement(line: string): string | undefined {
  const m = /LOG: {2}(?:statement|execute [^:]*): (.*)$/.exec(line);
  return m?.[1];
}
