import { Option, type Command } from "commander";
import { CliError } from "./cli-error.js";

/** The address `listen.api` has by default, for commands run on the gateway's own machine. */
export const DEFAULT_API_URL = "http://127.0.0.1:18000";

export interface ApiOptions {
  url: string;
  token?: string;
}

/** `--url` (env GATEHOUSE_URL) and `--token` (env GATEHOUSE_TOKEN) for commands that talk to a running gateway. */
export function withApiOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--url <url>", "the gateway's API (listen.api)").env("GATEHOUSE_URL").default(DEFAULT_API_URL),
    )
    .addOption(new Option("--token <token>", "your own bearer token").env("GATEHOUSE_TOKEN"));
}

/** Calls the admin API as the caller's own identity; a non-2xx answer becomes a one-line CliError. */
export async function callApi<T>(opts: ApiOptions, method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  if (!opts.token) throw new CliError("a token is required (--token or GATEHOUSE_TOKEN): you act as yourself", 2);
  let base: URL;
  try {
    base = new URL(opts.url.includes("://") ? opts.url : `http://${opts.url}`);
  } catch {
    throw new CliError(`invalid --url ${JSON.stringify(opts.url)}`, 2);
  }
  let res: Response;
  try {
    res = await fetch(new URL(path, base), {
      method,
      headers: {
        authorization: `Bearer ${opts.token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new CliError(
      `cannot reach the gateway at ${base.origin}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new CliError(`unexpected answer from ${base.origin} (HTTP ${res.status})`);
  }
  if (!res.ok) {
    const message = (json as { error?: unknown }).error;
    throw new CliError(typeof message === "string" ? message : `HTTP ${res.status}`);
  }
  return json as T;
}
