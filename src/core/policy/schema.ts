import { z } from "zod";
import { parseDuration } from "./duration.js";
import {
  checkColumnPattern,
  checkFunctionPattern,
  checkJsonPathPattern,
  checkMethodPattern,
  checkPathPattern,
  checkStatementPattern,
  checkTablePattern,
  checkVerbPattern,
  expandInVocabulary,
} from "./patterns.js";
import { parseSubject, SubjectSet } from "./subjects.js";
import {
  CONNECTION_TYPES,
  JWT_ALGORITHMS,
  MASKING_DETECTORS,
  MATCHER_KEYS,
  MATCHER_KEYS_BY_TYPE,
  STATEMENT_KINDS,
  type ConnectionType,
  type MatcherKey,
} from "./vocabulary.js";

// ---------------------------------------------------------------- scalars

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A duration field (`30s`, `5m`, `0`), validated to milliseconds, with an optional upper bound. */
function duration(max?: { ms: number; text: string }) {
  return z.unknown().transform((value, ctx): number => {
    if (typeof value !== "string" && typeof value !== "number") {
      ctx.addIssue({
        code: "custom",
        message: value === undefined ? "required" : "expected a duration such as 30s, 5m, 2h, 400d",
      });
      return z.NEVER;
    }
    const ms = parseDuration(value);
    if (typeof ms !== "number") {
      ctx.addIssue({ code: "custom", message: ms.error });
      return z.NEVER;
    }
    if (max && ms > max.ms) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is longer than the maximum ${max.text}` });
      return z.NEVER;
    }
    return ms;
  });
}

const nonEmpty = z.string().min(1);
const hostname = z.string().regex(/^[^\s/]+$/, "expected a host name or address (no spaces or slashes)");
const port = z.number().int().min(1).max(65535);

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export interface HostPort {
  host: string;
  port: number;
}

/** `host:port` or `[v6]:port`, port 1-65535. */
const hostPort = z.string().transform((text, ctx): HostPort => {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^\s:/[\]]+):(\d{1,5})$/.exec(text);
  const p = m ? Number(m[2]) : NaN;
  if (!m || !(p >= 1 && p <= 65535)) {
    ctx.addIssue({
      code: "custom",
      message: `invalid address ${JSON.stringify(text)} (expected host:port with port 1-65535)`,
    });
    return z.NEVER;
  }
  return { host: m[1] as string, port: p };
});

/** A URL with one of the given schemes; `http:` is only accepted for loopback hosts when `httpLoopbackOnly`. */
function url(schemes: readonly string[], opts: { httpLoopbackOnly?: boolean } = {}) {
  return z.string().superRefine((text, ctx) => {
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      ctx.addIssue({ code: "custom", message: `invalid URL ${JSON.stringify(text)}` });
      return;
    }
    const scheme = parsed.protocol.slice(0, -1);
    if (!schemes.includes(scheme)) {
      ctx.addIssue({
        code: "custom",
        message: `URL scheme must be ${schemes.join(" or ")}, got ${JSON.stringify(scheme)}`,
      });
      return;
    }
    if (opts.httpLoopbackOnly && scheme === "http" && !isLoopbackHost(parsed.hostname)) {
      ctx.addIssue({ code: "custom", message: `must use https (http is only allowed for loopback hosts): ${text}` });
    }
  });
}

const pem = z
  .string()
  .regex(/-----BEGIN [A-Z0-9 ]+-----/, "expected PEM text (use ${file:PATH} to read it from a file)");

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
const isoDate = z.string().transform((text, ctx): Date => {
  const d = new Date(text);
  if (!ISO_DATE.test(text) || Number.isNaN(d.getTime())) {
    ctx.addIssue({
      code: "custom",
      message: `invalid date ${JSON.stringify(text)} (expected ISO 8601, e.g. 2027-01-31 or 2027-01-31T12:00:00Z)`,
    });
    return z.NEVER;
  }
  return d;
});

function checked(check: (value: string) => string | undefined) {
  return z.string().superRefine((value, ctx) => {
    const problem = check(value);
    // not continuable: refinements of enclosing objects may assume every checked word is valid
    if (problem) ctx.addIssue({ code: "custom", message: problem, continue: false });
  });
}

const subject = checked((text) => {
  const ref = parseSubject(text);
  return "error" in ref ? ref.error : undefined;
});
const subjectList = z.array(subject).min(1);

const groupName = z.string().superRefine((g, ctx) => {
  if (g.startsWith("group:"))
    ctx.addIssue({
      code: "custom",
      message: `write the group name without the "group:" prefix: ${JSON.stringify(g.slice(6))}`,
    });
  else if (!/^[^\s,]+$/.test(g))
    ctx.addIssue({ code: "custom", message: `invalid group name ${JSON.stringify(g)} (no spaces or commas)` });
});

const NAME_RE = /^[a-z0-9][a-z0-9._-]*$/;
const resourceName = z
  .string()
  .regex(NAME_RE, "invalid name (lowercase letters, digits, '.', '_', '-'; starting with a letter or digit)");

// ---------------------------------------------------------------- matchers

const list = <T extends z.ZodType>(item: T) => z.array(item).min(1);

const matcherShape = {
  statements: list(checked(checkStatementPattern)).optional(),
  tables: list(checked(checkTablePattern)).optional(),
  functions: list(checked(checkFunctionPattern)).optional(),
  without_where: z.literal(true, { error: "without_where can only be true (leave it out otherwise)" }).optional(),
  commands: list(nonEmpty).optional(),
  patterns: list(nonEmpty).optional(),
  verbs: list(checked(checkVerbPattern)).optional(),
  resources: list(nonEmpty).optional(),
  namespaces: list(nonEmpty).optional(),
  methods: list(checked(checkMethodPattern)).optional(),
  paths: list(checked(checkPathPattern)).optional(),
};

/**
 * A matcher for one connection type. Keys are checked here rather than with `.strict()` so the message can say
 * that `commands` is a real key that just does not apply to a postgres connection.
 */
function matcher(type: ConnectionType) {
  const allowed = MATCHER_KEYS_BY_TYPE[type];
  return z.looseObject(matcherShape).superRefine((m, ctx) => {
    const keys = Object.keys(m);
    for (const key of keys) {
      if (!(MATCHER_KEYS as readonly string[]).includes(key)) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `unknown matcher key ${JSON.stringify(key)} (valid for ${type} connections: ${allowed.join(", ")})`,
        });
      } else if (!allowed.includes(key as MatcherKey)) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `matcher key ${JSON.stringify(key)} does not apply to a ${type} connection (valid: ${allowed.join(", ")})`,
        });
      }
    }
    if (keys.length === 0) {
      ctx.addIssue({
        code: "custom",
        message: `empty matcher matches nothing (use one or more of ${allowed.join(", ")})`,
      });
    }
    if (m.without_where) {
      const kinds = (m.statements ?? []).flatMap((p) => expandInVocabulary(p, STATEMENT_KINDS));
      if (!kinds.includes("update") && !kinds.includes("delete")) {
        ctx.addIssue({
          code: "custom",
          path: ["without_where"],
          message: "without_where needs statements that include update or delete",
        });
      }
    }
  });
}

const MAX_APPROVALS = 10;

function approvalRule(type: ConnectionType) {
  return z
    .object({
      require: matcher(type),
      approvers: subjectList,
      min_approvals: z.number().int().min(1).max(MAX_APPROVALS).default(1),
      hold: duration({ ms: 24 * HOUR, text: "24h" }).default(5 * MINUTE),
      reason_required: z.boolean().default(false),
    })
    .strict()
    .superRefine((rule, ctx) => {
      // Named subjects only, and fewer of them than required approvals: nobody could ever approve (and requesters
      // cannot approve their own request, which makes it worse).
      const valid = rule.approvers.filter((a) => !("error" in parseSubject(a)));
      const possible = new SubjectSet(valid).namedSubjectCount;
      if (possible < rule.min_approvals) {
        ctx.addIssue({
          code: "custom",
          path: ["min_approvals"],
          message: `${rule.min_approvals} approvals required but approvers name only ${possible} subject(s)`,
        });
      }
    });
}

/** Who may grant time-window access to a connection (`gatehouse access request CONN --for 30m`). */
const accessRequests = z
  .object({
    approvers: subjectList,
    min_approvals: z.number().int().min(1).max(MAX_APPROVALS).default(1),
    max: duration({ ms: 30 * 24 * HOUR, text: "30d" }).default(8 * HOUR),
    reason_required: z.boolean().default(false),
  })
  .strict()
  .superRefine((rule, ctx) => {
    const possible = new SubjectSet(rule.approvers.filter((a) => !("error" in parseSubject(a)))).namedSubjectCount;
    if (possible < rule.min_approvals) {
      ctx.addIssue({
        code: "custom",
        path: ["min_approvals"],
        message: `${rule.min_approvals} approvals required but approvers name only ${possible} subject(s)`,
      });
    }
    if (rule.max <= 0) ctx.addIssue({ code: "custom", path: ["max"], message: "max must be longer than 0" });
  });

function masking(type: ConnectionType) {
  const sql = type === "postgres" || type === "mysql";
  const json = type === "http" || type === "kubernetes";
  return z
    .object({
      json_paths: list(checked(checkJsonPathPattern))
        .optional()
        .superRefine((paths, ctx) => {
          if (paths && !json)
            ctx.addIssue({
              code: "custom",
              message: `json_paths masking applies only to http and kubernetes connections, not ${type}`,
            });
        }),
      columns: list(checked(checkColumnPattern))
        .optional()
        .superRefine((cols, ctx) => {
          if (cols && !sql)
            ctx.addIssue({
              code: "custom",
              message: `column masking applies only to postgres and mysql connections, not ${type}`,
            });
        }),
      detectors: list(z.enum(MASKING_DETECTORS)).optional(),
    })
    .strict();
}

// ---------------------------------------------------------------- targets

const tls = z.object({ mode: z.enum(["disable", "prefer", "require", "verify-full"]), ca: pem.optional() }).strict();

function sqlTarget(defaultPort: number) {
  return z
    .object({
      host: hostname,
      port: port.default(defaultPort),
      database: nonEmpty.optional(),
      user: nonEmpty,
      password: z.string().optional(),
      tls: tls.optional(),
    })
    .strict();
}

const HOST_KEY =
  /^(?:(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+={0,2}(?: .*)?|SHA256:[A-Za-z0-9+/]{43}=?)$/;

const sshTarget = z
  .object({
    host: hostname,
    port: port.default(22),
    user: nonEmpty,
    private_key: pem.optional(),
    password: z.string().optional(),
    host_key: z
      .string()
      .regex(HOST_KEY, 'expected a pinned host key ("ssh-ed25519 AAAA...") or fingerprint ("SHA256:...")'),
  })
  .strict();

const privateKeyPem = z
  .string()
  .regex(/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/, "expected a PEM private key (use ${file:PATH})");

/** The target side of an HTTPS connection: whom to trust, and the client certificate to present. */
const targetTls = {
  ca: pem.optional(),
  insecure_skip_tls_verify: z.boolean().default(false),
  client_cert: pem.optional(),
  client_key: privateKeyPem.optional(),
};

function clientCertPair(
  t: { client_cert?: string | undefined; client_key?: string | undefined },
  ctx: z.RefinementCtx,
) {
  if ((t.client_cert === undefined) !== (t.client_key === undefined))
    ctx.addIssue({ code: "custom", message: "client_cert and client_key go together" });
}

const kubernetesTarget = z
  .object({
    server: url(["https", "http"], { httpLoopbackOnly: true }),
    token: z.string().optional(),
    ...targetTls,
  })
  .strict()
  .superRefine(clientCertPair);

const headers = z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "invalid header name"), z.string());

/** The credential the gateway adds to every request it forwards (the client's own Authorization never passes). */
const httpTarget = z
  .object({
    url: url(["https", "http"]),
    headers: headers.optional(),
    bearer: z.string().min(1).optional(),
    basic: z.object({ user: nonEmpty, password: z.string() }).strict().optional(),
    ...targetTls,
  })
  .strict()
  .superRefine((t, ctx) => {
    clientCertPair(t, ctx);
    if (t.bearer !== undefined && t.basic !== undefined)
      ctx.addIssue({ code: "custom", message: "bearer and basic both set the Authorization header: choose one" });
    const named = Object.keys(t.headers ?? {}).find((h) => h.toLowerCase() === "authorization");
    if (named && (t.bearer !== undefined || t.basic !== undefined))
      ctx.addIssue({
        code: "custom",
        path: ["headers", named],
        message: "Authorization is already set by bearer/basic: choose one",
      });
  });

/**
 * What an HTTP-family connection records of each exchange, and how it is reached on the shared HTTP listener
 * besides its path prefix.
 */
const httpFamilyFields = {
  /** Request and (masked) response bodies are recorded up to this many bytes each; 0 records sizes only. */
  record_body_bytes: z
    .number()
    .int()
    .min(0)
    .max(16 * 1024 * 1024)
    .default(64 * 1024),
  /** Requests whose Host header is this name route to the connection without a path prefix. */
  host: hostname.optional(),
};

// ---------------------------------------------------------------- connections

/** What every connection has, whatever its type. */
function connectionShape<T extends ConnectionType, S extends z.ZodType>(type: T, target: S) {
  return {
    name: resourceName,
    type: z.literal(type),
    target,
    via: z
      .string()
      .regex(/^agent\/[a-z0-9][a-z0-9._-]*$/, 'expected "agent/NAME"')
      .optional(),
    /** Who holds the target's credentials: the gateway (sent inside the protocol, over the tunnel) or only the agent. */
    secrets: z.enum(["gateway", "agent"]).default("gateway"),
    access: subjectList,
    guardrails: z.array(z.object({ deny: matcher(type) }).strict()).default([]),
    approvals: z.array(approvalRule(type)).default([]),
    access_requests: accessRequests.optional(),
    masking: masking(type).optional(),
    on_unparseable: z.enum(["deny", "approve", "allow"]).default("deny"),
    /** Code the gateway cannot see into (`python3 -c`, dynamic SQL): by default refused where there are guardrails. */
    on_opaque: z.enum(["deny", "approve", "allow"]).optional(),
  };
}

function checkConnection(type: ConnectionType) {
  return (
    c: {
      on_unparseable: string;
      on_opaque?: string | undefined;
      approvals: unknown[];
      via?: string | undefined;
      secrets: string;
      target?: unknown;
    },
    ctx: z.RefinementCtx,
  ): void => {
    for (const key of ["on_unparseable", "on_opaque"] as const) {
      if (c[key] === "approve" && c.approvals.length === 0) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `${key}: approve needs an approvals rule (the first one's approvers decide)`,
        });
      }
    }
    if (c.secrets === "agent" && !c.via) {
      ctx.addIssue({
        code: "custom",
        path: ["secrets"],
        message: "secrets: agent needs via: agent/NAME (the agent that holds them)",
      });
    }
    if (c.secrets === "agent") {
      // the point of secrets: agent is that the gateway never holds them: a held one would be used after all
      const t = (c.target ?? {}) as Record<string, unknown>;
      for (const key of AGENT_HELD_TARGET_FIELDS[type]) {
        if (t[key] === undefined) continue;
        ctx.addIssue({
          code: "custom",
          path: ["target", key],
          message: `with secrets: agent only the agent holds the credentials: remove target.${key} here and give it to the agent (credentials.${key} in agent.yaml)`,
        });
      }
      if (type === "http" || type === "kubernetes") {
        // the agent makes the target's connection (and its TLS): a trust setting here would be accepted and unused
        for (const key of ["ca", "insecure_skip_tls_verify"] as const) {
          if (t[key] === undefined || t[key] === false) continue;
          ctx.addIssue({
            code: "custom",
            path: ["target", key],
            message: `with secrets: agent the agent connects to the target itself: remove target.${key} here and give it to the agent (target.${key} in agent.yaml)`,
          });
        }
      }
    }
    if (type === "ssh" && c.secrets !== "agent") {
      const t = c.target as { private_key?: string; password?: string };
      if (t.private_key === undefined && t.password === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["target"],
          message: "an ssh target needs private_key or password (or secrets: agent, when the agent holds them)",
        });
      }
    }
  };
}

/**
 * Target fields that hold (or, for client_cert, go with) a credential: with `secrets: agent` they belong in agent.yaml
 * (`credentials.FIELD`), never in the gateway's config.
 */
const AGENT_HELD_TARGET_FIELDS: Record<ConnectionType, readonly string[]> = {
  postgres: ["password", "private_key"],
  mysql: ["password", "private_key"],
  ssh: ["password", "private_key"],
  http: ["bearer", "basic", "headers", "client_cert", "client_key"],
  kubernetes: ["token", "client_cert", "client_key"],
};

function connection<T extends ConnectionType, S extends z.ZodType>(type: T, target: S) {
  return z.object(connectionShape(type, target)).strict().superRefine(checkConnection(type));
}

/** An HTTP-family connection (http, kubernetes): the common fields plus how its exchanges are routed and recorded. */
function httpFamilyConnection<T extends "http" | "kubernetes", S extends z.ZodType>(type: T, target: S) {
  return z
    .object({ ...connectionShape(type, target), ...httpFamilyFields })
    .strict()
    .superRefine(checkConnection(type));
}

export const connectionSchema = z.discriminatedUnion("type", [
  connection("postgres", sqlTarget(5432)),
  connection("mysql", sqlTarget(3306)),
  connection("ssh", sshTarget),
  httpFamilyConnection("kubernetes", kubernetesTarget),
  httpFamilyConnection("http", httpTarget),
]);

// ---------------------------------------------------------------- identity

const oidcIssuer = z
  .object({
    issuer: url(["https", "http"], { httpLoopbackOnly: true }),
    audience: z.union([nonEmpty, z.array(nonEmpty).min(1)]),
    groups_claim: nonEmpty.default("groups"),
    subject_claim: nonEmpty.default("sub"),
    kind: z.enum(["bot", "human", "auto"]).default("auto"),
    algorithms: list(z.enum(JWT_ALGORITHMS)).optional(),
    clock_skew: duration({ ms: 5 * MINUTE, text: "5m" }).default(30_000),
    jwks_uri: url(["https", "http"], { httpLoopbackOnly: true }).optional(),
  })
  .strict();

const staticToken = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]*$/, "invalid token name (letters, digits, '.', '_', '@', '-')"),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected the token's SHA-256 as 64 lowercase hex characters"),
    groups: z.array(groupName).default([]),
    kind: z.enum(["bot", "human"]).default("bot"),
    expires: isoDate.optional(),
  })
  .strict();

/** An SSH public key that logs in to the SSH listener as an identity (no token needed). */
const SSH_PUBLIC_KEY = /^(?:ssh-(?:ed25519|rsa)|ecdsa-sha2-nistp(?:256|384|521)) [A-Za-z0-9+/]+={0,2}(?: [^\n]*)?$/;

const sshKey = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]*$/, "invalid key name (letters, digits, '.', '_', '@', '-')"),
    key: z
      .string()
      .transform((k) => k.trim())
      .pipe(z.string().regex(SSH_PUBLIC_KEY, 'expected one public key line ("ssh-ed25519 AAAA... comment")')),
    groups: z.array(groupName).default([]),
    kind: z.enum(["bot", "human"]).default("bot"),
  })
  .strict();

// ---------------------------------------------------------------- audit

const SYSLOG_FACILITIES = [
  "kern",
  "user",
  "mail",
  "daemon",
  "auth",
  "syslog",
  "lpr",
  "news",
  "uucp",
  "cron",
  "authpriv",
  "ftp",
  "local0",
  "local1",
  "local2",
  "local3",
  "local4",
  "local5",
  "local6",
  "local7",
] as const;

export type AuditSinkConfig =
  | { type: "file"; path: string }
  | { type: "http"; url: string; headers: Record<string, string> }
  | {
      type: "syslog";
      protocol: "udp" | "tcp";
      host: string;
      port: number;
      facility: (typeof SYSLOG_FACILITIES)[number];
    };

const syslogAddress = z.string().transform((text, ctx) => {
  const m = /^(udp|tcp):\/\/(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(text);
  const p = m ? Number(m[3]) : NaN;
  if (!m || !(p >= 1 && p <= 65535)) {
    ctx.addIssue({
      code: "custom",
      message: `invalid syslog address ${JSON.stringify(text)} (expected udp://host:port or tcp://host:port)`,
    });
    return z.NEVER;
  }
  return { protocol: m[1] as "udp" | "tcp", host: (m[2] as string).replace(/^\[|\]$/g, ""), port: p };
});

const sink = z
  .object({
    file: nonEmpty.optional(),
    http: z
      .object({ url: url(["https", "http"]), headers: headers.optional() })
      .strict()
      .optional(),
    syslog: z
      .object({ address: syslogAddress, facility: z.enum(SYSLOG_FACILITIES).default("auth") })
      .strict()
      .optional(),
  })
  .strict()
  .transform((s, ctx): AuditSinkConfig => {
    const kinds = [s.file !== undefined, s.http !== undefined, s.syslog !== undefined].filter(Boolean).length;
    if (kinds !== 1) {
      ctx.addIssue({ code: "custom", message: "a sink has exactly one of file, http, syslog" });
      return z.NEVER;
    }
    if (s.file !== undefined) return { type: "file", path: s.file };
    if (s.http) return { type: "http", url: s.http.url, headers: s.http.headers ?? {} };
    const sys = s.syslog as NonNullable<typeof s.syslog>;
    return { type: "syslog", ...sys.address, facility: sys.facility };
  });

const audit = z
  .object({
    retention: duration().optional(),
    checkpoint_every: z.number().int().min(1).optional(),
    /**
     * What an audit record survives before its request is forwarded: `fsync` (default) = on disk, survives power
     * loss; `os` = written to the operating system, survives a gateway crash or kill -9 but not a machine crash.
     */
    durability: z.enum(["fsync", "os"]).default("fsync"),
    sinks: z.array(sink).default([]),
  })
  .strict();

// ---------------------------------------------------------------- approvals workflow

const notifier = z
  .object({
    webhook: z
      .object({
        url: url(["https", "http"]),
        secret: z.string().min(16, "the webhook secret must be at least 16 characters (use ${env:NAME})"),
      })
      .strict()
      .optional(),
    slack: z
      .object({ url: url(["https", "http"]) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((n, ctx) => {
    if ((n.webhook === undefined) === (n.slack === undefined))
      ctx.addIssue({ code: "custom", message: "a notifier has exactly one of webhook, slack" });
  });

const approvalsWorkflow = z
  .object({
    /** Public base URL of the gateway (API / UI), for links in notices and notifications. */
    url: url(["https", "http"]).optional(),
    /** `hold: 0`: after approval, the identical request may run once within this window. */
    hold_zero_window: duration({ ms: 7 * 24 * HOUR, text: "7d" }).default(10 * MINUTE),
    /** How long a request nobody waits on (`hold: 0`, access requests) stays approvable. */
    pending: duration({ ms: 7 * 24 * HOUR, text: "7d" }).default(HOUR),
    notify: z.array(notifier).default([]),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.hold_zero_window <= 0)
      ctx.addIssue({ code: "custom", path: ["hold_zero_window"], message: "must be longer than 0" });
    if (a.pending <= 0) ctx.addIssue({ code: "custom", path: ["pending"], message: "must be longer than 0" });
  });

// ---------------------------------------------------------------- top level

export const DEFAULT_API_LISTEN: HostPort = { host: "127.0.0.1", port: 18000 };

const listen = z
  .object({
    api: hostPort.default(DEFAULT_API_LISTEN),
    postgres: hostPort.optional(),
    mysql: hostPort.optional(),
    ssh: hostPort.optional(),
    http: hostPort.optional(),
    /** Where network-resident agents dial in (TLS). */
    agents: hostPort.optional(),
  })
  .strict();

/**
 * A listener's TLS (PostgreSQL's, the HTTP listener's). `cert`/`key` together or neither (then a self-signed
 * certificate is generated into DATA/keys/ on first start); `require: remote` asks TLS of every client that is not
 * on loopback.
 */
const listenerTls = z
  .object({
    enabled: z.boolean().default(true),
    cert: pem.optional(),
    key: privateKeyPem.optional(),
    require: z.enum(["remote", "always", "never"]).default("remote"),
  })
  .strict()
  .superRefine((t, ctx) => {
    if ((t.cert === undefined) !== (t.key === undefined))
      ctx.addIssue({
        code: "custom",
        message: "tls.cert and tls.key go together (or leave both out to generate one)",
      });
    if (!t.enabled && t.require !== "never")
      ctx.addIssue({
        code: "custom",
        path: ["require"],
        message: `require: ${t.require} needs TLS enabled (set require: never to accept only plaintext clients)`,
      });
  })
  .default({ enabled: true, require: "remote" });

const postgresListener = z.object({ tls: listenerTls }).strict();
const httpListener = z.object({ tls: listenerTls }).strict();

/** An agent allowed to dial in: its name (what `via: agent/NAME` says) and the SHA-256 of its token. */
const agentToken = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "invalid agent name (lowercase letters, digits, '.', '_', '-')"),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected the token's SHA-256 as 64 lowercase hex characters"),
  })
  .strict();

/**
 * The agent listener: its TLS certificate (generated into DATA/keys/agents-tls.* when absent; agents pin it), how
 * often both ends prove they are alive, and the agents that may dial in. Agents always use TLS.
 */
const agentsSection = z
  .object({
    tls: z
      .object({ cert: pem.optional(), key: privateKeyPem.optional() })
      .strict()
      .superRefine((t, ctx) => {
        if ((t.cert === undefined) !== (t.key === undefined))
          ctx.addIssue({ code: "custom", message: "agents.tls.cert and agents.tls.key go together" });
      })
      .default({}),
    heartbeat: duration({ ms: 5 * MINUTE, text: "5m" }).default(10_000),
    tokens: z.array(agentToken).default([]),
  })
  .strict();

export const configSchema = z
  .object({
    listen: listen.default({ api: DEFAULT_API_LISTEN }),
    data: nonEmpty.default("./data"),
    store: url(["postgres", "postgresql"]).optional(),
    identity: z
      .object({
        oidc: z.array(oidcIssuer).default([]),
        tokens: z.array(staticToken).default([]),
        ssh_keys: z.array(sshKey).default([]),
      })
      .strict()
      .default({ oidc: [], tokens: [], ssh_keys: [] }),
    connections: z.array(connectionSchema).default([]),
    audit: audit.default({ durability: "fsync", sinks: [] }),
    recordings: z.object({ retention: duration().optional() }).strict().default({}),
    postgres: postgresListener.default({ tls: { enabled: true, require: "remote" } }),
    http: httpListener.default({ tls: { enabled: true, require: "remote" } }),
    agents: agentsSection.default({ tls: {}, heartbeat: 10_000, tokens: [] }),
    approvals: approvalsWorkflow.default({ hold_zero_window: 10 * MINUTE, pending: HOUR, notify: [] }),
  })
  .strict()
  .superRefine((c, ctx) => {
    unique(ctx, c.connections, (x) => x.name, "connections", "name", "connection");
    unique(ctx, c.identity.tokens, (x) => x.name, "identity.tokens", "name", "token");
    unique(ctx, c.identity.tokens, (x) => x.sha256, "identity.tokens", "sha256", "token hash");
    unique(ctx, c.identity.ssh_keys, (x) => x.name, "identity.ssh_keys", "name", "key name");
    // the key blob alone: one key must not log in as two identities
    unique(ctx, c.identity.ssh_keys, (x) => x.key.split(/\s+/)[1] ?? "", "identity.ssh_keys", "key", "key");
    unique(ctx, c.agents.tokens, (x) => x.name, "agents.tokens", "name", "agent");
    unique(ctx, c.agents.tokens, (x) => x.sha256, "agents.tokens", "sha256", "token hash");
    checkAgentRoutes(c, ctx);
    unique(ctx, c.identity.oidc, (x) => x.issuer.replace(/\/+$/, ""), "identity.oidc", "issuer", "issuer");
    const seen = new Map<string, string>();
    for (const [name, addr] of Object.entries(c.listen)) {
      if (!addr) continue;
      const key = `${addr.host}:${addr.port}`;
      const other = seen.get(key);
      if (other)
        ctx.addIssue({ code: "custom", path: ["listen", name], message: `${key} is already used by listen.${other}` });
      seen.set(key, name);
    }
    refuseUnenforced(c, ctx);
  });

/**
 * Protocols whose target login can use credentials only an agent holds (`secrets: agent`): the adapter drives the
 * login and asks the agent's credential oracle for the steps that need the secret (an md5 response, a SCRAM proof,
 * an SSH signature). For http and kubernetes the agent is the HTTP origin instead: the gateway speaks plain HTTP to it
 * over the tunnel, and the agent adds the credential to each request and scrubs it from each response. Not mysql yet: its logins (mysql_native_password, caching_sha2_password) could use the same oracle, but none is built.
 */
const AGENT_LOGIN_PROTOCOLS: ReadonlySet<ConnectionType> = new Set<ConnectionType>([
  "postgres",
  "ssh",
  "http",
  "kubernetes",
]);

/** Every `via: agent/NAME` names an agent allowed to dial in, on a listener that runs. */
function checkAgentRoutes(
  c: {
    connections: { via?: string | undefined }[];
    agents: { tokens: { name: string }[] };
    listen: { agents?: HostPort | undefined };
  },
  ctx: z.RefinementCtx,
): void {
  const known = new Set(c.agents.tokens.map((t) => t.name));
  c.connections.forEach((conn, i) => {
    if (conn.via === undefined) return;
    const name = conn.via.slice("agent/".length);
    if (!known.has(name))
      ctx.addIssue({
        code: "custom",
        path: ["connections", i, "via"],
        message: `no agent named "${name}" in agents.tokens (add it with its token's sha256: gatehouse token new --name ${name})`,
      });
    else if (!c.listen.agents)
      ctx.addIssue({
        code: "custom",
        path: ["connections", i, "via"],
        message: `"${conn.via}" needs listen.agents, the address agents dial in to`,
      });
  });
}

/**
 * Settings the schema knows but this build does not act on. A security setting that is accepted and then does
 * nothing is worse than an error: each is refused, naming its path, until the feature that honours it exists.
 */
function refuseUnenforced(
  c: {
    connections: { type: ConnectionType; secrets: string }[];
    audit: { retention?: unknown };
    recordings: { retention?: unknown };
    store?: string | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  c.connections.forEach((conn, i) => {
    if (conn.secrets !== "agent" || AGENT_LOGIN_PROTOCOLS.has(conn.type)) return;
    ctx.addIssue({
      code: "custom",
      path: ["connections", i, "secrets"],
      message: `secrets: agent is not supported for ${conn.type} connections yet: the gateway would have no credential to log in with, so the setting is refused (hold the credentials in the gateway's config)`,
    });
  });
  for (const path of [
    ["audit", "retention"],
    ["recordings", "retention"],
  ] as const) {
    if (c[path[0]].retention === undefined) continue;
    ctx.addIssue({
      code: "custom",
      path: [...path],
      message:
        "retention is not enforced yet: nothing would be purged, so the setting is refused (remove it; evidence is kept until you delete it)",
    });
  }
  if (c.store !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["store"],
      message:
        "a PostgreSQL store is not supported yet: the gateway would use its embedded store in `data`, so the setting is refused (remove it)",
    });
  }
}

function unique<T>(
  ctx: z.RefinementCtx,
  items: readonly T[],
  key: (item: T) => string,
  listPath: string,
  field: string,
  what: string,
): void {
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    const k = key(item);
    const prev = first.get(k);
    if (prev !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: [...listPath.split("."), i, field],
        message: `duplicate ${what} ${JSON.stringify(k)} (also ${listPath}[${prev}])`,
      });
    } else first.set(k, i);
  });
}

// ---------------------------------------------------------------- types for the rest of the code

export type GatehouseConfig = z.output<typeof configSchema>;
export type ConnectionConfig = GatehouseConfig["connections"][number];
export type PostgresConnectionConfig = Extract<ConnectionConfig, { type: "postgres" }>;
export type MysqlConnectionConfig = Extract<ConnectionConfig, { type: "mysql" }>;
export type SshConnectionConfig = Extract<ConnectionConfig, { type: "ssh" }>;
export type KubernetesConnectionConfig = Extract<ConnectionConfig, { type: "kubernetes" }>;
export type HttpConnectionConfig = Extract<ConnectionConfig, { type: "http" }>;
export type MatcherConfig = z.output<ReturnType<typeof matcher>>;
export type GuardrailConfig = ConnectionConfig["guardrails"][number];
export type ApprovalRuleConfig = ConnectionConfig["approvals"][number];
export type AccessRequestsConfig = NonNullable<ConnectionConfig["access_requests"]>;
export type ApprovalsWorkflowConfig = GatehouseConfig["approvals"];
export type ApprovalNotifierConfig = ApprovalsWorkflowConfig["notify"][number];
export type MaskingConfig = NonNullable<ConnectionConfig["masking"]>;
export type OidcIssuerConfig = GatehouseConfig["identity"]["oidc"][number];
export type StaticTokenConfig = GatehouseConfig["identity"]["tokens"][number];
export type SshKeyConfig = GatehouseConfig["identity"]["ssh_keys"][number];
export type AuditConfig = GatehouseConfig["audit"];
export type RecordingsConfig = GatehouseConfig["recordings"];
export type ListenConfig = GatehouseConfig["listen"];
export type PostgresListenerConfig = GatehouseConfig["postgres"];
export type HttpListenerConfig = GatehouseConfig["http"];
export type AgentsConfig = GatehouseConfig["agents"];
export type ListenerTlsConfig = PostgresListenerConfig["tls"];
export type OnUnparseable = ConnectionConfig["on_unparseable"];
export type OnOpaque = NonNullable<ConnectionConfig["on_opaque"]>;
export { CONNECTION_TYPES };

/** Building blocks other config files reuse (the agent's), so the same values are spelled and checked the same way. */
export const configFields = { duration, nonEmpty, hostname, port, pem, hostPort, resourceName, url } as const;
