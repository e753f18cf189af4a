import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import ssh2 from "ssh2";
import { z } from "zod";
import { ConfigError, PathError, zodToConfigError } from "../core/policy/errors.js";
import { parseYaml } from "../core/policy/loader.js";
import { resolveReferences } from "../core/policy/references.js";
import { configFields } from "../core/policy/schema.js";

const { duration, nonEmpty, hostname, port, pem, hostPort, resourceName } = configFields;

/**
 * A connection's credentials held only by the agent (`secrets: agent` on the gateway's connection): a password for a
 * PostgreSQL login (md5 or SCRAM-SHA-256) or a private key for an SSH login. The agent computes the login steps that
 * need them (credentials.ts); they never cross the tunnel.
 */
const credentials = z
  .object({
    password: z.string().min(1).optional(),
    private_key: pem.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.password === undefined) === (c.private_key === undefined))
      ctx.addIssue({
        code: "custom",
        message:
          "give password (for a PostgreSQL login) or private_key (for an SSH login; SSH password logins cannot be held by an agent)",
      });
    if (c.private_key !== undefined) {
      const key = ssh2.utils.parseKey(c.private_key);
      // the parser's message names the problem (encrypted, unsupported type), never the key's content
      if (key instanceof Error)
        ctx.addIssue({
          code: "custom",
          path: ["private_key"],
          message: `not a usable SSH private key: ${key.message}`,
        });
      else if (!key.isPrivateKey())
        ctx.addIssue({ code: "custom", path: ["private_key"], message: "expected a private key, got a public one" });
    }
  });

/**
 * agent.yaml: which gateway to dial and how to trust it, the agent's token, and the targets it reaches for each
 * connection it serves (with the credentials of those whose login it performs). The agent dials only these targets:
 * a gateway cannot use it to reach anything else.
 */
export const agentConfigSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "invalid agent name (lowercase letters, digits, '.', '_', '-')"),
    token: nonEmpty,
    gateway: z
      .object({
        address: hostPort,
        /** The gateway certificate's CA (PEM); the certificate must name `server_name` (default: the address's host). */
        ca: pem.optional(),
        server_name: nonEmpty.optional(),
        /** Or a pinned public key, `sha256//BASE64` as `gatehouse agents pin` prints it. */
        pin: z
          .string()
          .regex(/^sha256\/\/[A-Za-z0-9+/]{43}=$/, "expected sha256//BASE64 (as `gatehouse agents pin` prints it)")
          .optional(),
      })
      .strict()
      .superRefine((g, ctx) => {
        if (g.ca === undefined && g.pin === undefined)
          ctx.addIssue({
            code: "custom",
            message: "say how to trust the gateway: ca (its CA certificate) or pin (its key's sha256// pin)",
          });
      }),
    connections: z
      .array(
        z
          .object({
            name: resourceName,
            target: z.object({ host: hostname, port }).strict(),
            credentials: credentials.optional(),
          })
          .strict(),
      )
      .min(1, "an agent serves at least one connection"),
    /** How often the agent proves it is alive before the gateway tells it the gateway's own interval. */
    heartbeat: duration({ ms: 5 * 60_000, text: "5m" }).default(10_000),
    reconnect: z
      .object({
        min: duration({ ms: 60_000, text: "1m" }).default(500),
        max: duration({ ms: 10 * 60_000, text: "10m" }).default(30_000),
      })
      .strict()
      .default({ min: 500, max: 30_000 }),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.connections.forEach((conn, i) => {
      if (seen.has(conn.name))
        ctx.addIssue({
          code: "custom",
          path: ["connections", i, "name"],
          message: `duplicate connection "${conn.name}"`,
        });
      seen.add(conn.name);
    });
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;

/** Parses agent.yaml text (with `${env:...}` and `${file:...}` references). Throws ConfigError naming the path. */
export function parseAgentConfig(
  text: string,
  options: { source?: string; baseDir?: string; env?: Readonly<Record<string, string | undefined>> } = {},
): AgentConfig {
  const source = options.source ?? "agent.yaml";
  const raw = parseYaml(text, source);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    throw ConfigError.at(source, "", "expected a mapping at the top level");
  let value: unknown;
  try {
    value = resolveReferences(raw, { baseDir: resolve(options.baseDir ?? "."), env: options.env ?? process.env }).value;
  } catch (err) {
    if (err instanceof PathError) throw ConfigError.at(source, err.path, err.message);
    throw err;
  }
  const result = agentConfigSchema.safeParse(value, { reportInput: true });
  if (!result.success) throw zodToConfigError(source, result.error);
  return result.data;
}

export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw ConfigError.at(path, "", `cannot read the file: ${(err as Error).message}`);
  }
  return parseAgentConfig(text, { source: path, baseDir: dirname(path) });
}
