import { createHash } from "node:crypto";
import type { AuditEventInput, AuditIdentity, AuditRecord } from "../evidence/audit-event.js";
import type { AuditLog } from "../evidence/audit-log.js";
import { EvidenceUnavailableError } from "../evidence/errors.js";
import { auditReference } from "../evidence/request-reference.js";
import type { SessionRecorder, SessionRecording } from "../evidence/recorder.js";
import type { Identity } from "../identity/identity.js";
import type { CompiledConnection, CompiledPolicy, Decision, RuleRef } from "../policy/decide.js";
import type { RequestFacts } from "../policy/facts.js";
import type { ConnectionType } from "../policy/vocabulary.js";
import { toAuditIdentity } from "./audit-identity.js";
import { newSessionId } from "./session-id.js";

/**
 * The one path every protocol adapter takes between a client and a target. It owns the invariants that no
 * adapter may forget: access is checked and `session.start` is durable before the target is dialled; a
 * request's audit record is durable before the adapter may forward it (evidence before effect); if evidence
 * cannot be written the answer is a refusal (fail closed).
 */
export interface GateDeps {
  policy: CompiledPolicy;
  audit: AuditLog;
  recorder: SessionRecorder;
  /** Holds requests that need a human; absent until the approval workflow is configured. */
  approvals?: ApprovalHandler;
  /** Approved time-window access: lets an identity outside a connection's `access` list in until it runs out. */
  grants?: AccessGrants;
}

/** How a held request ended. Outcomes that mean different things stay apart, so adapters can word them. */
export type HoldOutcome =
  | { approved: true; approvalId: string; approvers: string[] }
  | {
      approved: false;
      approvalId: string;
      /** pending: `hold: 0`, refused now, the identical request runs once after approval. */
      outcome: "denied" | "expired" | "cancelled" | "pending";
      reason: string;
    };

/** Plugged in by the approval workflow: resolves once humans decided (or the hold ran out). */
export interface ApprovalHandler {
  hold(
    session: GatedSession,
    request: GateRequest,
    decision: Extract<Decision, { outcome: "approve" }>,
  ): Promise<HoldOutcome>;
  /** The session ended: requests it still waits on can never resume and are cancelled. */
  sessionClosed?(session: GatedSession): Promise<void>;
}

/** An approved time-window access grant. */
export interface AccessGrant {
  /** The approval request that granted it; named in every audit record of the sessions it admits. */
  id: string;
  until: Date;
  approvers: string[];
  /** The config path of the rule it was granted under. */
  rule: string;
}

export interface AccessGrants {
  find(identity: Identity, connection: string): Promise<AccessGrant | undefined>;
}

export interface OpenSessionRequest {
  identity: Identity;
  connection: string;
  /** The adapter's protocol: a connection of another type is refused here, before any session evidence or dial. */
  protocol: ConnectionType;
  /** Where the client came from, e.g. "127.0.0.1:53412". */
  clientAddress?: string;
  /** Protocol details worth keeping (client application name, target database, username...). */
  data?: Record<string, unknown>;
}

export interface GateRequest {
  /** The request exactly as the client sent it (statement text, command line, method + path). */
  text: string;
  facts: RequestFacts;
  /** Protocol details for the audit event: parameters (already redacted), statement name, byte sizes... */
  data?: Record<string, unknown>;
  /**
   * Called by the approval workflow as soon as the request is held, so the adapter can tell the client in its
   * own protocol that it waits and where to approve (PostgreSQL: a NoticeResponse).
   */
  onHold?: (hold: HoldNotice) => void;
  /** Aborted when the client goes away: a request held for approval is then cancelled. */
  signal?: AbortSignal;
  /** Bound parameters, when known at admission: part of what makes a `hold: 0` retry identical. */
  parameters?: readonly (string | null)[];
  /**
   * The request as evidence and approvers see it when `text` / `parameters` hold secrets (a role's password, a
   * card number in a bound value). Decisions and `hold: 0` retry matching still use the exact `text`.
   */
  shown?: { text?: string; parameters?: readonly (string | null)[] };
  /** The analyzer's normalized fingerprint (literals removed), shown to approvers. */
  fingerprint?: string;
}

/** What a request's evidence holds: its text (or the redacted text shown instead) and the adapter's details. */
export type RequestEvidence = Pick<GateRequest, "text" | "shown" | "data">;

/** Why an adapter refuses a request of its own accord (not a policy decision). */
export interface AdapterRefusal {
  reason: string;
  /** The configuration path behind the refusal (e.g. `connections[0].masking`), when one is. */
  rule?: string;
  /** Where in the exchange it was refused, when not at the request (e.g. "output": its result was unscannable). */
  stage?: string;
}

/** What a client is told when its request is held for approval. */
export interface HoldNotice {
  approvalId: string;
  rule: RuleRef;
  /** When the hold runs out and the request is refused. */
  expiresAt: Date;
  /** One line for people: what is held, and the command / URL that approves it. */
  message: string;
}

/** Why a request was not forwarded; the adapter turns it into its protocol's refusal. */
export type RefusalKind =
  | "denied"
  | "approval_denied"
  | "approval_expired"
  | "approval_cancelled"
  /** `hold: 0`: refused now with the approval id; the identical request runs once after approval. */
  | "approval_pending"
  | "evidence_unavailable";

export type Admission =
  | { forward: true; record: AuditRecord; rule?: RuleRef; approvalId?: string }
  | { forward: false; kind: RefusalKind; message: string; rule?: RuleRef; approvalId?: string; record?: AuditRecord };

/** A session was refused before it started. `code` says which protocol error to answer with. */
export class SessionRefusedError extends Error {
  constructor(
    readonly code: "unknown_connection" | "wrong_protocol" | "no_access" | "evidence_unavailable",
    message: string,
    readonly rule?: RuleRef,
  ) {
    super(message);
    this.name = "SessionRefusedError";
  }
}

export class Gate {
  constructor(private readonly deps: GateDeps) {}

  get policy(): CompiledPolicy {
    return this.deps.policy;
  }

  /** Records a failed authentication (bad token, unknown user...) without ever storing the credential. */
  async authFailed(event: {
    protocol: string;
    connection?: string;
    clientAddress?: string;
    code: string;
    message: string;
  }): Promise<void> {
    await this.deps.audit
      .append({
        type: "auth.failed",
        ...(event.connection !== undefined ? { connection: event.connection } : {}),
        data: { protocol: event.protocol, client: event.clientAddress, code: event.code, message: event.message },
      })
      // a failed login is refused whatever happens; losing its record must not turn into an unhandled error
      .catch(() => undefined);
  }

  /**
   * Checks the identity may use the connection and makes `session.start` durable, then starts the recording.
   * Throws SessionRefusedError (after recording the refusal when evidence is writable).
   */
  async openSession(req: OpenSessionRequest): Promise<GatedSession> {
    const { policy, audit, recorder } = this.deps;
    const identity = toAuditIdentity(req.identity);
    const connection = policy.connection(req.connection);
    const base = {
      identity,
      connection: req.connection,
      data: { protocol: req.protocol, client: req.clientAddress, ...req.data },
    };
    if (!connection) {
      await audit
        .append({ ...base, type: "session.refused", decision: "deny", rule: "connections" })
        .catch(() => undefined);
      throw new SessionRefusedError("unknown_connection", `no connection named "${req.connection}"`);
    }
    if (connection.config.type !== req.protocol) {
      await audit
        .append({ ...base, type: "session.refused", decision: "deny", rule: "connections" })
        .catch(() => undefined);
      throw new SessionRefusedError(
        "wrong_protocol",
        `connection "${req.connection}" is a ${connection.config.type} connection, not ${req.protocol}`,
      );
    }
    let access = policy.checkAccess(req.identity, connection);
    let grant: AccessGrant | undefined;
    if (access.outcome !== "allow" && this.deps.grants) {
      grant = await this.deps.grants.find(req.identity, req.connection).catch(() => undefined);
      if (grant) access = grantAccess(grant);
    }
    if (access.outcome !== "allow") {
      const rule = access.rule;
      await audit
        .append({ ...base, type: "session.refused", decision: "deny", rule: rule.path })
        .catch(() => undefined);
      throw new SessionRefusedError(
        "no_access",
        `${req.identity.subject} may not use connection "${req.connection}" (${rule.summary})`,
        rule,
      );
    }
    const sessionId = newSessionId();
    try {
      await audit.append({
        ...base,
        type: "session.start",
        session_id: sessionId,
        decision: "allow",
        ...(access.rule ? { rule: access.rule.path } : {}),
        ...(grant ? { data: { ...base.data, grant_id: grant.id, grant_until: grant.until.toISOString() } } : {}),
      });
      const recording = await recorder.start({
        sessionId,
        connection: req.connection,
        protocol: req.protocol,
        identity,
      });
      return new GatedSession(this.deps, sessionId, req.identity, identity, connection, recording, req.protocol, grant);
    } catch (err) {
      throw new SessionRefusedError("evidence_unavailable", evidenceMessage(err));
    }
  }
}

/** One client session on one connection, after access was granted. */
export class GatedSession {
  #closed: Promise<void> | undefined;
  #requests = 0;

  constructor(
    private readonly deps: GateDeps,
    readonly id: string,
    readonly identity: Identity,
    private readonly auditIdentity: AuditIdentity,
    readonly connection: CompiledConnection,
    readonly recording: SessionRecording,
    readonly protocol: string,
    /** Set when the session exists thanks to a time-window grant rather than the access list. */
    readonly grant?: AccessGrant,
  ) {}

  get requestCount(): number {
    return this.#requests;
  }

  /**
   * Decides a request and writes its audit record. Resolves `forward: true` only once that record is durable;
   * the adapter must forward nothing else. Never rejects: evidence failure is a refusal.
   */
  async admit(request: GateRequest): Promise<Admission> {
    this.#requests++;
    const grant = this.grant;
    if (grant && Date.now() >= grant.until.getTime()) {
      // the grant ran out mid-session: nothing more passes under it (the recording names the grant's rule; the
      // audit record names none, as no rule of the policy decided it)
      const message = `access grant ${grant.id} expired at ${grant.until.toISOString()}`;
      const expired = { outcome: "deny", rule: { path: grant.rule, summary: message }, reason: message } as const;
      return this.#settle(request, expired, false);
    }
    const decision = this.deps.policy.decide(
      this.identity,
      this.connection,
      request.facts,
      grant ? grantAccess(grant) : undefined,
    );
    if (decision.outcome !== "approve") return this.#settle(request, decision, true);
    // held for approval: the audit record comes only once the hold ended, so the recording's event, taken now,
    // carries the request itself
    const recorded = this.#recordRequest(request, decision);
    try {
      // a request whose recording event was not taken is not forwarded: it would be missing from the recording
      if (recorded instanceof Error) throw recorded;
      return await this.#hold(request, decision);
    } catch (err) {
      return this.#refused(err);
    }
  }

  /**
   * An allowed or denied request: its audit record and its recording event. Encode once: when the recorder can
   * take an event now, the audit record is appended first and the event refers to it (its hash) instead of
   * holding the text and data a second time. The event is recorded as soon as the record is durable, before
   * `admit` resolves: a request is never forwarded before its event is in the recording.
   */
  async #settle(
    request: RequestEvidence,
    decision: Exclude<Decision, { outcome: "approve" }>,
    /** The audit record names the decision's rule (a policy rule decided it). */
    named: boolean,
  ): Promise<Admission> {
    const rule = named ? decision.rule : undefined;
    const append = (): Promise<AuditRecord> =>
      decision.outcome === "deny"
        ? this.#append("request.blocked", request, "deny", rule, { reason: decision.reason })
        : this.#append("request", request, "allow", rule);
    const admitted = (record: AuditRecord): Admission =>
      decision.outcome === "deny"
        ? { forward: false, kind: "denied", message: decision.reason, ...(rule ? { rule } : {}), record }
        : { forward: true, record, ...(rule ? { rule } : {}) };

    // Checked synchronously, in the same task as the append: a request whose event the recorder could not take
    // gets no audit record saying it was allowed (the path below refuses it first).
    if (this.recording.canRecord(REFERENCE_EVENT_BYTES) === true) {
      let record: AuditRecord;
      try {
        record = await append();
      } catch (err) {
        // no audit record to refer to: the recording keeps the request itself, then the refusal
        this.#recordRequest(request, decision);
        return this.#refused(err);
      }
      const taken = this.#recordReference(record, decision);
      if (decision.outcome === "deny") {
        // refused and audited either way: a failing recorder shows at this session's next request
        if (taken === false) await this.recording.drain().catch(() => undefined);
        return admitted(record);
      }
      if (taken === true) return admitted(record);
      // The recorder filled up, or the session was sealed, while the record was written (other sessions'
      // events; a close), or it is past its high-water mark now. The record says "allowed", so a refusal follows
      // it unless the recorder catches up.
      try {
        if (taken instanceof Error) throw taken;
        await this.recording.drain();
        return admitted(record);
      } catch (err) {
        return this.#withdraw(record, err);
      }
    }

    // The recorder is past its high-water mark or cannot take an event: as before, the request's event (with its
    // text) first, then, for an allowed request, the wait for the recorder, and only then the audit record.
    const recorded = this.#recordRequest(request, decision);
    try {
      if (decision.outcome === "deny") {
        const record = await append();
        if (recorded === false) await this.recording.drain().catch(() => undefined);
        return admitted(record);
      }
      // a request whose recording event was not taken is not forwarded: it would be missing from the recording
      if (recorded instanceof Error) throw recorded;
      // the recorder is behind: this session waits for it rather than let its events pile up (or be dropped).
      // Before the audit record: when the recorder's store fails, drain() rejects and the request is refused
      // with no audit record saying it was allowed.
      if (!recorded) await this.recording.drain();
      return admitted(await append());
    } catch (err) {
      return this.#refused(err);
    }
  }

  /**
   * Refuses a request for a reason of the adapter's own rather than a policy decision (a COPY that masking cannot
   * cover, a statement that changed since it was judged). Written exactly like a denied request, so refusals look
   * alike in every protocol: a `request.blocked` audit record with the reason (naming `rule` when given) and the
   * recording's request event. Never rejects: resolves with the audit record, or undefined when evidence is
   * unavailable (the request is refused either way).
   */
  async refuse(request: RequestEvidence, why: AdapterRefusal): Promise<AuditRecord | undefined> {
    this.#requests++;
    const decision = {
      outcome: "deny",
      rule: { path: why.rule ?? "gateway", summary: why.reason },
      reason: why.reason,
    } as const;
    const evidence = why.stage ? { ...request, data: { ...request.data, stage: why.stage } } : request;
    const settled = await this.#settle(evidence, decision, why.rule !== undefined);
    return settled.record;
  }

  /** Refused for evidence: after the request's event (and its policy decision), the recording shows it. */
  #refused(err: unknown): Admission {
    const message = evidenceMessage(err);
    this.#note({ refused: message });
    return { forward: false, kind: "evidence_unavailable", message };
  }

  /**
   * An allowed request's record is durable but its recording event could not be taken: refused, and an audit
   * record `request.refused` naming the allowing one follows it (best effort: if the audit log fails now too,
   * the request is refused all the same).
   */
  async #withdraw(record: AuditRecord, err: unknown): Promise<Admission> {
    const message = evidenceMessage(err);
    this.#note({ refused: message });
    await this.audit({
      type: "request.refused",
      data: { protocol: this.protocol, request: { hash: record.hash, seq: record.seq }, reason: message },
    }).catch(() => undefined);
    return { forward: false, kind: "evidence_unavailable", message };
  }

  async #hold(request: GateRequest, decision: Extract<Decision, { outcome: "approve" }>): Promise<Admission> {
    const handler = this.deps.approvals;
    if (!handler) {
      // Without the workflow a held request can never be approved: refuse rather than forward unapproved.
      const message = `${decision.reason}; no approval workflow is configured on this gateway`;
      this.#note({ refused: message });
      const record = await this.#append("request.blocked", request, "approve", decision.rule, { reason: message });
      return { forward: false, kind: "denied", message, rule: decision.rule, record };
    }
    // the recording shows the wait: when the request was held, and how it ended
    const held: GateRequest = {
      ...request,
      onHold: (notice) => {
        this.#note({ held: notice.approvalId, rule: notice.rule.path, expires_at: notice.expiresAt.toISOString() });
        request.onHold?.(notice);
      },
    };
    const outcome = await handler.hold(this, held, decision);
    this.#note(
      outcome.approved
        ? { approved: outcome.approvalId, approvers: outcome.approvers }
        : { [outcome.outcome]: outcome.approvalId, reason: outcome.reason },
    );
    if (outcome.approved) {
      const record = await this.#append("request", request, "approve", decision.rule, {
        approval_id: outcome.approvalId,
        approvers: outcome.approvers,
      });
      return { forward: true, record, rule: decision.rule, approvalId: outcome.approvalId };
    }
    const record = await this.#append("request.blocked", request, "approve", decision.rule, {
      approval_id: outcome.approvalId,
      reason: outcome.reason,
    });
    return {
      forward: false,
      kind: REFUSAL_BY_OUTCOME[outcome.outcome],
      message: outcome.reason,
      rule: decision.rule,
      approvalId: outcome.approvalId,
      record,
    };
  }

  /** Appends an audit event on behalf of this session (adapters: results, errors, notable protocol events). */
  audit(event: Omit<AuditEventInput, "identity" | "connection" | "session_id">): Promise<AuditRecord> {
    return this.deps.audit.append({
      ...event,
      identity: this.auditIdentity,
      connection: this.connection.name,
      session_id: this.id,
    });
  }

  /** Ends the session once: `session.end` in the audit log, then the recording's seal. */
  close(reason: string, data?: Record<string, unknown>): Promise<void> {
    this.#closed ??= (async () => {
      const results = await Promise.allSettled([
        this.deps.approvals?.sessionClosed?.(this),
        this.audit({ type: "session.end", data: { reason, requests: this.#requests, ...data } }),
        this.recording.seal(reason),
      ]);
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    })();
    return this.#closed;
  }

  #append(
    type: "request" | "request.blocked",
    request: RequestEvidence,
    decision: "allow" | "deny" | "approve",
    rule: RuleRef | undefined,
    extra?: Record<string, unknown>,
  ): Promise<AuditRecord> {
    return this.audit({
      type,
      decision,
      ...(rule ? { rule: rule.path } : {}),
      data: {
        // the adapter's details first: they can never replace the protocol or the (redacted) text
        ...request.data,
        protocol: this.protocol,
        text: request.shown?.text ?? request.text,
        // every use of a time-window grant is attributed to it
        ...(this.grant ? { grant_id: this.grant.id } : {}),
        ...extra,
      },
    });
  }

  #note(data: Record<string, unknown>): void {
    try {
      this.recording.record("notice", data);
    } catch {
      // recording buffer full: the audit record carries the same fact
    }
  }

  /**
   * One recording event per request: what was asked and how it was decided (one hash, one row). Returns false
   * when the recorder is past its high-water mark and the session should wait for it, and the error when the
   * recording cannot take the event (its buffer is full because its store fails, or it is sealed).
   */
  #recordRequest(request: RequestEvidence, decision: Decision): boolean | Error {
    return this.#record({
      ...request.data,
      ...recordedText(request.shown?.text ?? request.text),
      decision: decisionData(decision),
    });
  }

  /** The request's event when its audit record holds the request: a reference to that record, and the decision. */
  #recordReference(record: AuditRecord, decision: Decision): boolean | Error {
    return this.#record({ audit: auditReference(record), decision: decisionData(decision) });
  }

  #record(data: Record<string, unknown>): boolean | Error {
    try {
      return this.recording.record("request", data);
    } catch (err) {
      return err instanceof Error ? err : new EvidenceUnavailableError(String(err));
    }
  }
}

function decisionData(decision: Decision): Record<string, unknown> {
  return {
    outcome: decision.outcome,
    ...(decision.rule ? { rule: decision.rule.path, summary: decision.rule.summary } : {}),
    ...(decision.outcome !== "allow" ? { reason: decision.reason } : {}),
  };
}

/**
 * Room a referring request event needs, checked before its audit record is appended: the event (a reference and
 * the decision, with a rule's summary) stays well below this.
 */
const REFERENCE_EVENT_BYTES = 2048;

/** Longer request texts are recorded as their head plus length and SHA-256 (the audit record has them whole). */
export const RECORDED_TEXT_LIMIT = 1024 * 1024;

function recordedText(text: string): Record<string, unknown> {
  if (text.length <= RECORDED_TEXT_LIMIT) return { text };
  return {
    text: `${text.slice(0, RECORDED_TEXT_LIMIT)}…`,
    text_length: text.length,
    text_sha256: createHash("sha256").update(text).digest("hex"),
  };
}

const REFUSAL_BY_OUTCOME = {
  denied: "approval_denied",
  expired: "approval_expired",
  cancelled: "approval_cancelled",
  pending: "approval_pending",
} as const satisfies Record<Extract<HoldOutcome, { approved: false }>["outcome"], RefusalKind>;

function grantAccess(grant: AccessGrant): Extract<Decision, { outcome: "allow" }> {
  return {
    outcome: "allow",
    rule: { path: grant.rule, summary: `access grant ${grant.id} until ${grant.until.toISOString()}` },
  };
}

function evidenceMessage(err: unknown): string {
  if (err instanceof EvidenceUnavailableError) return `evidence unavailable, request refused: ${err.message}`;
  return `evidence unavailable, request refused: ${err instanceof Error ? err.message : String(err)}`;
}
