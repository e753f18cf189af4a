import { CompiledPolicy } from "./decide.js";
import { formatDuration } from "./duration.js";
import { configMeta } from "./loader.js";
import type { ReferenceMap } from "./references.js";
import type { ConnectionConfig, GatehouseConfig, HostPort } from "./schema.js";

/**
 * The effective rules of a config in a form that is safe to print or ship as JSON: secret fields show the
 * reference they came from (`${env:APP_DB_PASSWORD}`) or `<redacted>`, never the value.
 */

export const REDACTED = "<redacted>";

/** Target fields that hold credentials. Header values are always treated as secrets too. */
const SECRET_TARGET_FIELDS = new Set(["password", "private_key", "token"]);

export interface RuleDescription {
  path: string;
  summary: string;
}

export interface ConnectionDescription {
  name: string;
  type: ConnectionConfig["type"];
  target: Record<string, string | number | boolean>;
  via?: string;
  /** "agent" when only the agent holds the target's credentials (absent: the gateway holds them). */
  secrets?: "agent";
  access: string[];
  guardrails: RuleDescription[];
  approvals: (RuleDescription & {
    approvers: string[];
    min_approvals: number;
    hold: string;
    reason_required: boolean;
  })[];
  masking?: { columns: string[]; detectors: string[] };
  on_unparseable: string;
  /** With the reason when defaulted: `deny, the default on a connection with guardrails`. */
  on_opaque: string;
}

export interface ConfigDescription {
  source: string;
  listen: Record<string, string>;
  data: string;
  store?: string;
  identity: {
    oidc: {
      issuer: string;
      audience: string[];
      groups_claim: string;
      subject_claim: string;
      kind: string;
      algorithms?: string[];
      clock_skew: string;
    }[];
    tokens: { name: string; groups: string[]; kind: string; expires?: string }[];
  };
  connections: ConnectionDescription[];
  audit: { retention?: string; checkpoint_every?: number; sinks: string[] };
  recordings: { retention?: string };
}

function secret(refs: ReferenceMap, path: string): string {
  return refs.get(path) ?? REDACTED;
}

/** A URL with any password replaced, e.g. for `store`. */
function redactUrl(text: string): string {
  try {
    const u = new URL(text);
    if (u.password) u.password = "redacted";
    return u.toString();
  } catch {
    return REDACTED;
  }
}

function flattenTarget(
  target: Record<string, unknown>,
  base: string,
  refs: ReferenceMap,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(target)) {
    const path = `${base}.${key}`;
    if (value === undefined) continue;
    if (SECRET_TARGET_FIELDS.has(key)) out[key] = secret(refs, path);
    else if (key === "headers" && value && typeof value === "object") {
      for (const name of Object.keys(value)) out[`headers.${name}`] = secret(refs, `${path}.${name}`);
    } else if (key === "tls" && value && typeof value === "object") {
      const tls = value as { mode: string; ca?: string };
      out["tls.mode"] = tls.mode;
      if (tls.ca !== undefined) out["tls.ca"] = refs.get(`${path}.ca`) ?? "<PEM>";
    } else if (key === "ca" && typeof value === "string") out[key] = refs.get(path) ?? "<PEM>";
    else if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") out[key] = value;
  }
  return out;
}

const hostPort = (a: HostPort) => (a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

export function describeConfig(config: GatehouseConfig): ConfigDescription {
  const meta = configMeta(config);
  const refs: ReferenceMap = meta?.references ?? new Map();
  const policy = CompiledPolicy.for(config);

  const connections = policy.connections.map((cc): ConnectionDescription => {
    const c = cc.config;
    const base = `connections[${cc.index}]`;
    const d: ConnectionDescription = {
      name: c.name,
      type: c.type,
      target: flattenTarget(c.target as Record<string, unknown>, `${base}.target`, refs),
      access: [...c.access],
      guardrails: cc.guardrails.map((g) => ({ ...g.ref })),
      approvals: cc.approvals.map((a) => ({
        ...a.ref,
        approvers: [...a.config.approvers],
        min_approvals: a.config.min_approvals,
        hold: formatDuration(a.config.hold),
        reason_required: a.config.reason_required,
      })),
      on_unparseable: c.on_unparseable,
      on_opaque: cc.onOpaqueRef.summary.replace(/^on_opaque /, ""),
    };
    if (c.via) d.via = c.via;
    if (c.secrets === "agent") d.secrets = "agent";
    if (c.masking) d.masking = { columns: c.masking.columns ?? [], detectors: c.masking.detectors ?? [] };
    return d;
  });

  const listen: Record<string, string> = {};
  for (const [k, v] of Object.entries(config.listen)) if (v) listen[k] = hostPort(v);

  const description: ConfigDescription = {
    source: meta?.source ?? "(config)",
    listen,
    data: config.data,
    identity: {
      oidc: config.identity.oidc.map((o) => ({
        issuer: o.issuer,
        audience: typeof o.audience === "string" ? [o.audience] : [...o.audience],
        groups_claim: o.groups_claim,
        subject_claim: o.subject_claim,
        kind: o.kind,
        ...(o.algorithms ? { algorithms: [...o.algorithms] } : {}),
        clock_skew: formatDuration(o.clock_skew),
      })),
      // the hash is not a secret in itself, but there is no reason to print it either
      tokens: config.identity.tokens.map((t) => ({
        name: t.name,
        groups: [...t.groups],
        kind: t.kind,
        ...(t.expires ? { expires: t.expires.toISOString() } : {}),
      })),
    },
    connections,
    audit: {
      ...(config.audit.retention !== undefined ? { retention: formatDuration(config.audit.retention) } : {}),
      ...(config.audit.checkpoint_every !== undefined ? { checkpoint_every: config.audit.checkpoint_every } : {}),
      sinks: config.audit.sinks.map((s) =>
        s.type === "file"
          ? `file ${s.path}`
          : s.type === "http"
            ? `http ${redactUrl(s.url)}${Object.keys(s.headers).length ? ` (headers ${Object.keys(s.headers).join(", ")})` : ""}`
            : `syslog ${s.protocol}://${hostPort(s)} facility ${s.facility}`,
      ),
    },
    recordings:
      config.recordings.retention !== undefined ? { retention: formatDuration(config.recordings.retention) } : {},
  };
  if (config.store) description.store = redactUrl(config.store);
  return description;
}

/** Plain-text rendering for `gatehouse policy check`. */
export function renderDescription(d: ConfigDescription): string {
  const lines: string[] = [];
  const count = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  lines.push(
    `${d.source}: OK (${count(d.connections.length, "connection")}, ${count(d.identity.oidc.length, "OIDC issuer")}, ${count(d.identity.tokens.length, "static token")})`,
  );
  const field = (label: string, value: string) => lines.push(`  ${label.padEnd(12)} ${value}`);
  const list = (label: string, values: string[]) => {
    values.forEach((v, i) => lines.push(`  ${(i === 0 ? label : "").padEnd(12)} ${v}`));
    if (values.length === 0) field(label, "(none)");
  };

  for (const c of d.connections) {
    lines.push("", `connection ${c.name} (${c.type})`);
    field(
      "target",
      Object.entries(c.target)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(" "),
    );
    if (c.via) field("via", c.via);
    if (c.secrets) field("secrets", "agent (the target's credentials are held only by the agent)");
    field("access", c.access.join(", "));
    list(
      "guardrails",
      c.guardrails.map((g) => `${g.path}: ${g.summary}`),
    );
    list(
      "approvals",
      c.approvals.map((a) => `${a.path}: ${a.summary}`),
    );
    if (c.masking) {
      const parts = [];
      if (c.masking.columns.length) parts.push(`columns ${c.masking.columns.join(", ")}`);
      if (c.masking.detectors.length) parts.push(`detectors ${c.masking.detectors.join(", ")}`);
      field("masking", parts.join("; "));
    }
    field("unparseable", c.on_unparseable);
    field("opaque code", c.on_opaque);
  }

  lines.push("", "identity");
  list(
    "oidc",
    d.identity.oidc.map(
      (o) => `${o.issuer} audience ${o.audience.join(", ")} groups from "${o.groups_claim}" kind ${o.kind}`,
    ),
  );
  list(
    "tokens",
    d.identity.tokens.map(
      (t) =>
        `${t.name} (${t.kind}) groups ${t.groups.join(", ") || "(none)"}${t.expires ? ` expires ${t.expires}` : ""}`,
    ),
  );
  lines.push("", "gateway");
  field(
    "listen",
    Object.entries(d.listen)
      .map(([k, v]) => `${k} ${v}`)
      .join(", "),
  );
  field("store", d.store ?? `embedded (${d.data})`);
  list("audit sinks", d.audit.sinks);
  if (d.audit.retention) field("audit", `retention ${d.audit.retention}`);
  if (d.recordings.retention) field("recordings", `retention ${d.recordings.retention}`);
  return lines.join("\n") + "\n";
}
