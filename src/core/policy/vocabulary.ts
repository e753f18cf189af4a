import { ASYMMETRIC_ALGORITHMS } from "../identity/config.js";
/**
 * The words a policy may use. Analyzers must map what they see onto these names, and the schema rejects anything
 * else, because a misspelt kind in a deny rule would otherwise silently never match.
 */

export const STATEMENT_KINDS = [
  "select",
  "insert",
  "update",
  "delete",
  "merge",
  "copy",
  "copy_program",
  "copy_file",
  "drop",
  "truncate",
  "alter_table",
  "alter_role",
  "alter",
  "create_table",
  "create_index",
  "create_role",
  "create_function",
  "create",
  "grant",
  "revoke",
  "do",
  "call",
  "set",
  "show",
  "begin",
  "commit",
  "rollback",
  "prepare",
  "execute",
  "deallocate",
  "declare",
  "fetch",
  "close",
  "explain",
  "vacuum",
  "analyze",
  "lock",
  "listen",
  "notify",
  "discard",
  "reset",
  "comment",
  "refresh",
  "cluster",
  "reindex",
  "security_label",
  "load",
  "unknown",
] as const;

export type StatementKind = (typeof STATEMENT_KINDS)[number];

const STATEMENT_KIND_SET: ReadonlySet<string> = new Set(STATEMENT_KINDS);

export function isStatementKind(kind: string): kind is StatementKind {
  return STATEMENT_KIND_SET.has(kind);
}

/**
 * Kubernetes API verbs: RBAC's, plus the gateway's names for the connect-style subresources (exec, attach,
 * portforward, log, proxy), which a request for pods/exec and the like carries as its verb (facts.ts, ApiCallFact).
 */
export const KUBERNETES_VERBS = [
  "get",
  "list",
  "watch",
  "create",
  "update",
  "patch",
  "delete",
  "deletecollection",
  "proxy",
  "impersonate",
  "bind",
  "escalate",
  "approve",
  "sign",
  "use",
  "exec",
  "attach",
  "portforward",
  "log",
] as const;

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"] as const;

export const CONNECTION_TYPES = ["postgres", "mysql", "ssh", "kubernetes", "http"] as const;
export type ConnectionType = (typeof CONNECTION_TYPES)[number];

export const MATCHER_KEYS = [
  "statements",
  "tables",
  "functions",
  "without_where",
  "commands",
  "patterns",
  "verbs",
  "resources",
  "namespaces",
  "methods",
  "paths",
] as const;
export type MatcherKey = (typeof MATCHER_KEYS)[number];

/**
 * Which matcher keys mean something for which connection type. `functions` only where an analyzer reports calls
 * (PostgreSQL): on a connection whose facts never carry them, a deny rule would silently never fire.
 */
export const MATCHER_KEYS_BY_TYPE: Record<ConnectionType, readonly MatcherKey[]> = {
  postgres: ["statements", "tables", "functions", "without_where"],
  mysql: ["statements", "tables", "without_where"],
  ssh: ["commands", "patterns"],
  // commands and patterns judge the commands an exec runs and the lines typed into it (same analysis as ssh)
  kubernetes: ["verbs", "resources", "namespaces", "commands", "patterns"],
  http: ["methods", "paths"],
};

export const MASKING_DETECTORS = ["credit_card", "email", "jwt", "private_key", "iban", "aws_key"] as const;
export type MaskingDetector = (typeof MASKING_DETECTORS)[number];

/** The algorithms an OIDC issuer may be configured to accept: identity's asymmetric-only list. */
export const JWT_ALGORITHMS = ASYMMETRIC_ALGORITHMS;
