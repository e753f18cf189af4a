/**
 * Gateway config YAML for tests and benchmarks that run against the test servers (test/services.sh): identities
 * plus connections to the test PostgreSQL / OpenSSH / nginx (or an HTTP target of the test's own). No vitest
 * imports, so bench/ can use it too.
 */
import { readFileSync } from "node:fs";
import { randomInt } from "node:crypto";
import { createServer, type Server } from "node:net";
import type { ServicesEnv } from "./services-env.js";

/** A connection's `target:`, with the config's own field names. */
export interface PgTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
}

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** A `${file:PATH}` reference, as a config would hold it. */
  private_key?: string;
  password?: string;
  host_key: string;
}

/** An HTTP connection's `target:`: the base URL requests go to, and headers the gateway adds (its credential). */
export interface HttpConnectionTarget {
  url: string;
  headers?: Record<string, string>;
}

export interface ConnectionOptions {
  /** Default: app-db for PostgreSQL, app-host for SSH, web for HTTP. */
  name?: string;
  /** The one group given access (`access: [group:G]`). */
  group: string;
  /** More YAML for the connection (guardrails, masking...), written from column 0: it is indented here. */
  extra?: string;
}

export interface GatewayYamlOptions {
  data: string;
  /** Ports on 127.0.0.1 by listener (api, postgres, ssh, http): `gatehouse serve` needs them in the file. */
  listen?: Record<string, number>;
  /** Static-token identities; sha256 as generateStaticToken() returns it. */
  tokens?: { name: string; sha256: string; groups: string[] }[];
  sshKeys?: { name: string; key: string; groups: string[] }[];
  /** Blocks from pgConnectionYaml / sshConnectionYaml / httpConnectionYaml (or list items at column 2). */
  connections: string[];
  /** More top-level YAML (audit:, approvals:...). */
  top?: string;
}

export type PgLogin = "scram" | "md5" | "trust";

/** The test PostgreSQL as a target, logged into as one of its users (default: the SCRAM one). */
export function testPgTarget(env: ServicesEnv, login: PgLogin = "scram"): PgTarget {
  const server = { host: env.GH_TEST_PG_HOST, port: Number(env.GH_TEST_PG_PORT), database: env.GH_TEST_PG_DATABASE };
  if (login === "md5") return { ...server, user: env.GH_TEST_PG_MD5_USER, password: env.GH_TEST_PG_MD5_PASSWORD };
  if (login === "trust") return { ...server, user: env.GH_TEST_PG_TRUST_USER };
  return { ...server, user: env.GH_TEST_PG_SCRAM_USER, password: env.GH_TEST_PG_SCRAM_PASSWORD };
}

/**
 * The test OpenSSH server as a target: the gateway logs in with the test client key (or the password) and pins
 * `hostKey`, by default the server's real host key.
 */
export function testSshTarget(env: ServicesEnv, o: { auth?: "key" | "password"; hostKey?: string } = {}): SshTarget {
  return {
    host: env.GH_TEST_SSH_HOST,
    port: Number(env.GH_TEST_SSH_PORT),
    user: env.GH_TEST_SSH_USER,
    ...(o.auth === "password"
      ? { password: env.GH_TEST_SSH_PASSWORD }
      : { private_key: `\${file:${env.GH_TEST_SSH_CLIENT_KEY}}` }),
    host_key: o.hostKey ?? readFileSync(env.GH_TEST_SSH_HOST_KEY_PUB, "utf8").trim(),
  };
}

/**
 * `k: v, ...` of a YAML flow map. Values are written as JSON (valid YAML), so passwords, keys and `${file:...}`
 * references need no quoting care.
 */
export function flowFields(fields: object): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
    .join(", ");
}

function connectionYaml(type: string, name: string, target: object, o: ConnectionOptions): string {
  const lines = [
    `  - name: ${name}`,
    `    type: ${type}`,
    `    target: { ${flowFields(target)} }`,
    `    access: [group:${o.group}]`,
  ];
  if (o.extra) lines.push(o.extra.replace(/^/gm, "    "));
  return lines.join("\n");
}

export function pgConnectionYaml(target: PgTarget, o: ConnectionOptions): string {
  return connectionYaml("postgres", o.name ?? "app-db", target, o);
}

export function sshConnectionYaml(target: SshTarget, o: ConnectionOptions): string {
  return connectionYaml("ssh", o.name ?? "app-host", target, o);
}

/** The test nginx (test/services.sh) as an HTTP target. */
export function testHttpTarget(env: ServicesEnv): HttpConnectionTarget {
  return { url: `http://${env.GH_TEST_HTTP_HOST}:${env.GH_TEST_HTTP_PORT}` };
}

export function httpConnectionYaml(target: HttpConnectionTarget, o: ConnectionOptions): string {
  return connectionYaml("http", o.name ?? "web", target, o);
}

/** A whole gateway config. */
export function gatewayYaml(o: GatewayYamlOptions): string {
  const lines: string[] = [];
  if (o.listen) {
    const listen = Object.fromEntries(Object.entries(o.listen).map(([k, port]) => [k, `127.0.0.1:${port}`]));
    lines.push(`listen: { ${flowFields(listen)} }`);
  }
  lines.push(`data: ${JSON.stringify(o.data)}`);
  if (o.tokens?.length || o.sshKeys?.length) lines.push("identity:");
  if (o.tokens?.length) lines.push("  tokens:", ...o.tokens.map((t) => `    - { ${flowFields(t)} }`));
  if (o.sshKeys?.length) lines.push("  ssh_keys:", ...o.sshKeys.map((k) => `    - { ${flowFields(k)} }`));
  lines.push("connections:", ...o.connections, o.top ?? "");
  return `${lines.join("\n")}\n`;
}

/**
 * `n` distinct ports that were free a moment ago, for `listen:` (the config schema wants a real port, not 0). They
 * are picked below 32768, outside the kernel's ephemeral range, so no outgoing connection takes one meanwhile; all
 * are held at once while picking, so two of them are never the same port.
 */
export async function freePorts(n: number): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < n) {
      const port = 20_000 + randomInt(12_000);
      if (ports.includes(port)) continue;
      const server = createServer();
      const bound = await new Promise<boolean>((resolve) => {
        server.once("error", () => resolve(false));
        server.listen(port, "127.0.0.1", () => resolve(true));
      });
      if (!bound) continue;
      held.push(server);
      ports.push(port);
    }
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
  return ports;
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}
