/**
 * Helpers for the approval e2e tests: the real CLI in a child process, approver identities minted by the
 * gateway's own issuer, and a webhook receiver that checks signatures.
 */
import { spawn } from "node:child_process";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import type { Harness } from "../postgres/harness.js";

const CLI = new URL("./cli.ts", import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `gatehouse ARGS` against the harness's API as the identity behind `token` (env, as a user would). */
export function gatehouse(h: Harness, token: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
      env: { ...process.env, GATEHOUSE_URL: `http://${h.gateway.api.address}`, GATEHOUSE_TOKEN: token },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: stdout.trim(), stderr: stderr.trim() }));
  });
}

/** A human approver minted by the gateway's token issuer. */
export async function approver(h: Harness, subject: string, groups = ["dba"]): Promise<string> {
  return (await h.gateway.tokens.mint({ subject, groups, kind: "human" })).token;
}

/** Polls until `check` returns a value (approval ids appear once psql's statement is held). */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The newest pending approval request (optionally of a kind), once there is one. */
export function pendingApproval(h: Harness, kind?: "hold" | "retry" | "access") {
  return eventually(async () => {
    const list = await h.gateway.approvals.service.list({ statuses: ["pending"], ...(kind ? { kind } : {}) });
    return list[0];
  });
}

export interface Receiver {
  url: string;
  deliveries: { body: string; headers: IncomingHttpHeaders }[];
  attempts: number;
  close(): Promise<void>;
}

/** An HTTP receiver that answers 503 to the first `failFirst` attempts, then 204. */
export async function webhookReceiver(failFirst: number): Promise<Receiver> {
  const r: Receiver = { url: "", deliveries: [], attempts: 0, close: async () => undefined };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      r.attempts++;
      if (r.attempts <= failFirst) return void res.writeHead(503).end();
      r.deliveries.push({ body, headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  r.close = () => new Promise((ok) => server.close(() => ok()));
  return r;
}
