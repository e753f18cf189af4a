import type { Identity } from "../identity/identity.js";
import { formatDuration } from "./duration.js";
import type { OpaqueFact, RequestFacts } from "./facts.js";
import { compileMatcher, type CompiledMatcher } from "./matcher.js";
import type { ApprovalRuleConfig, ConnectionConfig, GatehouseConfig, OnOpaque, OnUnparseable } from "./schema.js";
import { SubjectSet } from "./subjects.js";

/** Which rule made a decision: its config path (for evidence and `policy test`) and a readable summary. */
export interface RuleRef {
  path: string;
  summary: string;
}

/**
 * Outcomes that mean different things stay different types: a deny is final, an approve holds the request for
 * humans under `approval`, an allow says which access entry let the identity in.
 */
export type Decision =
  | { outcome: "allow"; rule?: RuleRef }
  | { outcome: "deny"; rule: RuleRef; reason: string }
  | { outcome: "approve"; rule: RuleRef; approval: ApprovalRuleConfig; reason: string };

interface CompiledRule {
  ref: RuleRef;
  matcher: CompiledMatcher;
}

interface CompiledApproval extends CompiledRule {
  config: ApprovalRuleConfig;
}

/** One connection's rules, compiled once when the config loads. */
export interface CompiledConnection {
  readonly index: number;
  readonly name: string;
  readonly config: ConnectionConfig;
  readonly access: SubjectSet;
  readonly accessRef: RuleRef;
  readonly guardrails: readonly CompiledRule[];
  readonly approvals: readonly CompiledApproval[];
  readonly onUnparseable: OnUnparseable;
  /** `on_opaque`, or its default: deny where the connection has guardrails (they could not see the code), else allow. */
  readonly onOpaque: OnOpaque;
  readonly onOpaqueRef: RuleRef;
}

export function approvalSummary(rule: ApprovalRuleConfig, matcherSummary: string): string {
  const hold = rule.hold === 0 ? "no hold" : `hold ${formatDuration(rule.hold)}`;
  const reason = rule.reason_required ? ", reason required" : "";
  return `require approval for ${matcherSummary} (${rule.min_approvals} of ${rule.approvers.join(", ")}, ${hold}${reason})`;
}

export function compileConnection(config: ConnectionConfig, index: number): CompiledConnection {
  const base = `connections[${index}]`;
  return {
    index,
    name: config.name,
    config,
    access: new SubjectSet(config.access),
    accessRef: { path: `${base}.access`, summary: `access ${config.access.join(", ")}` },
    guardrails: config.guardrails.map((g, i) => {
      const matcher = compileMatcher(g.deny, config.type);
      return { ref: { path: `${base}.guardrails[${i}]`, summary: `deny ${matcher.summary}` }, matcher };
    }),
    approvals: config.approvals.map((a, i) => {
      const matcher = compileMatcher(a.require, config.type);
      return {
        ref: { path: `${base}.approvals[${i}]`, summary: approvalSummary(a, matcher.summary) },
        matcher,
        config: a,
      };
    }),
    onUnparseable: config.on_unparseable,
    ...opaquePolicy(config, base),
  };
}

function opaquePolicy(config: ConnectionConfig, base: string): { onOpaque: OnOpaque; onOpaqueRef: RuleRef } {
  const onOpaque = config.on_opaque ?? (config.guardrails.length > 0 ? "deny" : "allow");
  const defaulted =
    config.on_opaque === undefined
      ? `, the default on a connection with${onOpaque === "deny" ? "" : "out"} guardrails`
      : "";
  return { onOpaque, onOpaqueRef: { path: `${base}.on_opaque`, summary: `on_opaque ${onOpaque}${defaulted}` } };
}

/** Why hidden code is refused or held, and how to permit it. */
function opaqueReason(connection: CompiledConnection, opaque: readonly OpaqueFact[]): string {
  const what = opaque.map((o) => o.detail).join("; ");
  const permit =
    connection.onOpaque === "deny"
      ? `; to permit it set on_opaque: approve or allow on connection ${JSON.stringify(connection.name)}`
      : "";
  return `${what}: runs code the gateway cannot see into, so no deny rule could stop what it does (${connection.onOpaqueRef.path}: ${connection.onOpaqueRef.summary}${permit})`;
}

/** Holds a request under the connection's first approval rule (on_unparseable/on_opaque: approve). */
function holdUnderFirstApproval(connection: CompiledConnection, rule: RuleRef, reason: string): Decision {
  const first = connection.approvals[0];
  // the schema forbids approve without an approvals rule; fail closed if that ever changes
  if (!first) return { outcome: "deny", rule, reason };
  return { outcome: "approve", rule, approval: first.config, reason };
}

function describeIdentity(identity: Identity): string {
  const groups = identity.groups.length > 0 ? ` (groups ${identity.groups.join(", ")})` : "";
  return `${identity.kind} ${JSON.stringify(identity.subject)}${groups}`;
}

/** Session start: may this identity use this connection at all? */
export function checkAccess(identity: Identity, connection: CompiledConnection): Decision {
  const via = connection.access.match(identity);
  if (via === undefined) {
    return {
      outcome: "deny",
      rule: connection.accessRef,
      reason: `${describeIdentity(identity)} has no access to connection ${JSON.stringify(connection.name)}`,
    };
  }
  return { outcome: "allow", rule: { path: connection.accessRef.path, summary: `access via ${via}` } };
}

/**
 * One request. Order: access, then an unparseable request's fate, then guardrails (first match denies), then hidden
 * code's (on_opaque deny), then holds (on_unparseable/on_opaque approve, then approval rules, first match holds),
 * else allow. Guardrails run before approvals so that no approver can let through what a deny rule forbids; with
 * on_unparseable approve/allow they still run on whatever facts were extracted.
 */
export function decide(
  identity: Identity,
  connection: CompiledConnection,
  facts: RequestFacts,
  /** Access already established another way (an approved time-window grant): skips the access list. */
  granted?: Extract<Decision, { outcome: "allow" }>,
): Decision {
  const access = granted ?? checkAccess(identity, connection);
  if (access.outcome !== "allow") return access;

  const unparseable = facts.unparseable;
  const unparseableRef: RuleRef | undefined = unparseable && {
    path: `connections[${connection.index}].on_unparseable`,
    summary: `on_unparseable ${connection.onUnparseable}`,
  };
  if (unparseable && unparseableRef && connection.onUnparseable === "deny") {
    return { outcome: "deny", rule: unparseableRef, reason: `request could not be analyzed (${unparseable.reason})` };
  }

  for (const g of connection.guardrails) {
    const hit = g.matcher.match(facts);
    if (hit !== undefined) {
      return { outcome: "deny", rule: g.ref, reason: `${hit} is denied by ${g.ref.path} (${g.ref.summary})` };
    }
  }

  const opaque = facts.opaque && facts.opaque.length > 0 ? facts.opaque : undefined;
  if (opaque && connection.onOpaque === "deny") {
    return { outcome: "deny", rule: connection.onOpaqueRef, reason: opaqueReason(connection, opaque) };
  }

  if (unparseable && unparseableRef && connection.onUnparseable === "approve") {
    return holdUnderFirstApproval(connection, unparseableRef, `request could not be analyzed (${unparseable.reason})`);
  }
  if (opaque && connection.onOpaque === "approve") {
    return holdUnderFirstApproval(connection, connection.onOpaqueRef, opaqueReason(connection, opaque));
  }

  for (const a of connection.approvals) {
    const hit = a.matcher.match(facts);
    if (hit !== undefined) {
      return { outcome: "approve", rule: a.ref, approval: a.config, reason: `${hit} needs approval (${a.ref.path})` };
    }
  }

  if (unparseableRef) return { outcome: "allow", rule: unparseableRef };
  return opaque ? { outcome: "allow", rule: connection.onOpaqueRef } : access;
}

const compiled = new WeakMap<GatehouseConfig, CompiledPolicy>();

/** All connections of a config, compiled; look connections up by name on the hot path. */
export class CompiledPolicy {
  readonly connections: readonly CompiledConnection[];
  private readonly byName: ReadonlyMap<string, CompiledConnection>;

  constructor(readonly config: GatehouseConfig) {
    this.connections = config.connections.map((c, i) => compileConnection(c, i));
    this.byName = new Map(this.connections.map((c) => [c.name, c]));
  }

  /** Compiles once per config object. */
  static for(config: GatehouseConfig): CompiledPolicy {
    let policy = compiled.get(config);
    if (!policy) {
      policy = new CompiledPolicy(config);
      compiled.set(config, policy);
    }
    return policy;
  }

  connection(name: string): CompiledConnection | undefined {
    return this.byName.get(name);
  }

  decide(
    identity: Identity,
    connection: string | CompiledConnection,
    facts: RequestFacts,
    granted?: Extract<Decision, { outcome: "allow" }>,
  ): Decision {
    const c = typeof connection === "string" ? this.byName.get(connection) : connection;
    return c ? decide(identity, c, facts, granted) : unknownConnection(connection as string);
  }

  checkAccess(identity: Identity, connection: string | CompiledConnection): Decision {
    const c = typeof connection === "string" ? this.byName.get(connection) : connection;
    return c ? checkAccess(identity, c) : unknownConnection(connection as string);
  }
}

export function compilePolicy(config: GatehouseConfig): CompiledPolicy {
  return CompiledPolicy.for(config);
}

function unknownConnection(name: string): Decision {
  return {
    outcome: "deny",
    rule: { path: "connections", summary: "no such connection" },
    reason: `no connection named ${JSON.stringify(name)}`,
  };
}
