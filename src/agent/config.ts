import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import ssh2 from "ssh2";
import { z } from "zod";
import { ConfigError, PathError, zodToConfigError } from "../core/policy/errors.js";
import { parseYaml } from "../core/policy/loader.js";
import { resolveReferences } from "../core/policy/references.js";
import { configFields } from "../core/policy/schema.js";

const { duration, nonEmpty, hostname, port, pem, hostPort, resourceName, url } = configFields;

/** The fields of an HTTP credential: what the agent adds to each request of an http or kubernetes connection. */
const HTTP_FIELDS = ["bearer", "token", "basic", "headers", "client_cert", "client_key"] as const;

/**
 * A connection's credentials held only by the agent (`secrets: agent` on the gateway's connection): a password for a
 * PostgreSQL login (md5 or SCRAM-SHA-256), a private key for an SSH login, or for an http or kubernetes connection
 * what the agent adds to each request (a bearer token, `token` being Kubernetes' name for one, a basic login,
 * headers, a client certificate). The agent computes the login steps that need them (credentials.ts) or makes the
 * requests itself (http-origin.ts); they never cross the tunnel.
 */
const credentials = z
  .object({
    password: z.string().min(1).optional(),
    private_key: pem.optional(),
    bearer: z.string().min(1).optional(),
    token: z.string().min(1).optional(),
    basic: z
      .object({ user: nonEmpty, password: z.string().min(1) })
      .strict()
      .optional(),
    headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "invalid header name"), z.string()).optional(),
    client_cert: pem.optional(),
    client_key: z
      .string()
      .regex(/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/, "expected a PEM private key (use ${file:PATH})")
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const http = HTTP_FIELDS.filter((f) => c[f] !== undefined);
    const kinds = [c.password !== undefined, c.private_key !== undefined, http.length > 0].filter(Boolean).length;
    if (kinds !== 1)
      ctx.addIssue({
        code: "custom",
        message:
          "give password (for a PostgreSQL login), private_key (for an SSH login; SSH password logins cannot be held by an agent), or for an http or kubernetes connection bearer, token, basic, headers or client_cert with client_key",
      });
    const authorization = ["bearer", "token", "basic"].filter((f) => c[f as keyof typeof c] !== undefined);
    if (authorization.length > 1)
      ctx.addIssue({
        code: "custom",
        message: `${authorization.join(" and ")} all set the Authorization header: choose one`,
      });
    const named = Object.keys(c.headers ?? {}).find((h) => h.toLowerCase() === "authorization");
    if (named && authorization.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["headers", named],
        message: `Authorization is already set by ${authorization[0]}: choose one`,
      });
    if ((c.client_cert === undefined) !== (c.client_key === undefined))
      ctx.addIssue({ code: "custom", message: "client_cert and client_key go together" });
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
 * Where the agent reaches a connection's target: `host` and `port`, or a `url` (http or https) for a connection whose
 * HTTP requests the agent makes itself (http credentials), with the trust settings of an https target. Normalized to
 * host and port, which the gateway's streams must name.
 */
const target = z
  .object({
    host: hostname.optional(),
    port: port.optional(),
    url: url(["http", "https"]).optional(),
    ca: pem.optional(),
    insecure_skip_tls_verify: z.boolean().optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.url !== undefined && (t.host !== undefined || t.port !== undefined))
      ctx.addIssue({ code: "custom", message: "give url, or host and port, not both" });
    else if (t.url === undefined && (t.host === undefined || t.port === undefined))
      ctx.addIssue({ code: "custom", message: "give host and port (or url for an http or kubernetes target)" });
    if (!t.url?.startsWith("https:"))
      for (const key of ["ca", "insecure_skip_tls_verify"] as const)
        if (t[key] !== undefined)
          ctx.addIssue({ code: "custom", path: [key], message: `${key} is for an https url only` });
  })
  .transform((t) => {
    if (t.url === undefined) return { host: t.host as string, port: t.port as number };
    const u = new URL(t.url);
    const secure = u.protocol === "https:";
    return {
      host: u.hostname.replace(/^\[|\]$/g, ""),
      port: u.port ? Number(u.port) : secure ? 443 : 80,
      url: t.url,
      ...(t.ca !== undefined ? { ca: t.ca } : {}),
      insecure_skip_tls_verify: t.insecure_skip_tls_verify ?? false,
    };
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
            target,
            credentials: credentials.optional(),
          })
          .strict()
          .superRefine((conn, ctx) => {
            const c = conn.credentials;
            const http = c !== undefined && HTTP_FIELDS.some((f) => c[f] !== undefined);
            if (http && !("url" in conn.target))
              ctx.addIssue({
                code: "custom",
                path: ["target"],
                message:
                  "http credentials need target.url (http:// or https://): the agent makes the requests to it itself",
              });
          }),
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
