import type { AuditEventInput } from "../evidence/audit-event.js";
import type { AuditLog } from "../evidence/audit-log.js";
import type { Identity } from "../identity/identity.js";
import type { RuleRef } from "../policy/decide.js";
import { toAuditIdentity } from "../session/audit-identity.js";
import { LocalApprovalBus, type ApprovalBus } from "./bus.js";
import { newApprovalId } from "./keys.js";
import type { ApprovalEvent, ApprovalEventType, ApprovalNotifier } from "./notifier.js";
import { applyVote, approversOf, VoteRefusedError } from "./rules.js";
import type { ApprovalKind, ApprovalRecord, ApprovalStore, HeldRequest } from "./types.js";

export interface ApprovalSettings {
  /** Public base URL of the gateway's API/UI, for links in notices and notifications. */
  publicUrl?: string;
  /** After a `hold: 0` request is granted, its identical retry may run once within this window. */
  retryWindowMs: number;
  /** How long a request nobody waits on (`hold: 0`, access) stays approvable. */
  pendingMs: number;
}

export interface NewApproval {
  kind: ApprovalKind;
  requester: Identity;
  connection: string;
  sessionId?: string;
  request?: HeldRequest;
  exactKey?: string;
  reason?: string;
  durationMs?: number;
  rule: RuleRef;
  approvers: readonly string[];
  minApprovals: number;
  reasonRequired: boolean;
  /** How long the request stays approvable. */
  pendingMs: number;
}

export interface ApprovalServiceDeps {
  store: ApprovalStore;
  audit: AuditLog;
  settings: ApprovalSettings;
  bus?: ApprovalBus;
  notifiers?: readonly ApprovalNotifier[];
  now?: () => Date;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** The record does not exist. */
export class ApprovalNotFoundError extends Error {
  constructor(id: string) {
    super(`no approval request ${JSON.stringify(id)}`);
    this.name = "ApprovalNotFoundError";
  }
}

const CAS_ATTEMPTS = 8;

/**
 * Approval requests from creation to their end. The store is the source of truth (every change is a
 * compare-and-set on the record's version, so concurrent votes, expiry and cancellation cannot both win); the
 * bus only wakes waiters, which then read the store again. Every transition is an audit event.
 */
export class ApprovalService {
  readonly #store: ApprovalStore;
  readonly #audit: AuditLog;
  readonly #bus: ApprovalBus;
  readonly #notifiers: readonly ApprovalNotifier[];
  readonly #now: () => Date;
  readonly #log: (msg: string, fields?: Record<string, unknown>) => void;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly settings: ApprovalSettings;

  constructor(deps: ApprovalServiceDeps) {
    this.#store = deps.store;
    this.#audit = deps.audit;
    this.#bus = deps.bus ?? new LocalApprovalBus();
    this.#notifiers = deps.notifiers ?? [];
    this.#now = deps.now ?? (() => new Date());
    this.#log = deps.log ?? (() => undefined);
    this.settings = deps.settings;
  }

  /**
   * After a restart: a held request's client connection is gone, so it can never resume; it becomes cancelled
   * (approving it later is refused with that reason). Requests nobody waits on (retry, access) stay pending
   * until they expire.
   */
  async start(): Promise<void> {
    const pending = await this.#store.listApprovals({ statuses: ["pending"], limit: 100_000 });
    for (const record of pending) {
      if (record.kind === "hold") await this.cancel(record.id, "the gateway restarted while the client waited");
      else this.#schedule(record);
    }
  }

  /** Stops expiry timers (the records stay; `start` picks them up again). */
  stop(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }

  async flushNotifications(): Promise<void> {
    await Promise.all(this.#notifiers.map((n) => n.flush()));
  }

  get(id: string): Promise<ApprovalRecord | undefined> {
    return this.#store.getApproval(id);
  }

  list(query: Parameters<ApprovalStore["listApprovals"]>[0] = {}): Promise<ApprovalRecord[]> {
    return this.#store.listApprovals(query);
  }

  /** Creates a pending request; resolves once it is stored and `approval.requested` is durable. */
  async request(input: NewApproval): Promise<ApprovalRecord> {
    const now = this.#now();
    const record: ApprovalRecord = {
      id: newApprovalId(now.getTime()),
      kind: input.kind,
      status: "pending",
      connection: input.connection,
      ...(input.sessionId !== undefined ? { session_id: input.sessionId } : {}),
      requester: toAuditIdentity(input.requester),
      ...(input.request ? { request: input.request } : {}),
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
      ...(input.durationMs !== undefined ? { duration_ms: input.durationMs } : {}),
      rule: input.rule,
      approvers: [...input.approvers],
      min_approvals: input.minApprovals,
      reason_required: input.reasonRequired,
      votes: [],
      created_at: now.toISOString(),
      expires_at: new Date(now.getTime() + input.pendingMs).toISOString(),
      ...(input.exactKey !== undefined ? { exact_key: input.exactKey } : {}),
      version: 0,
    };
    await this.#store.insertApproval(record);
    try {
      await this.#audit.append({
        type: "approval.requested",
        identity: record.requester,
        connection: record.connection,
        ...(record.session_id !== undefined ? { session_id: record.session_id } : {}),
        decision: "approve",
        rule: record.rule.path,
        data: {
          approval_id: record.id,
          kind: record.kind,
          approvers: record.approvers,
          min_approvals: record.min_approvals,
          expires_at: record.expires_at,
          ...(record.request ? { text: record.request.text, fingerprint: record.request.fingerprint } : {}),
          ...(record.request?.parameters ? { parameters: record.request.parameters } : {}),
          ...(record.reason !== undefined ? { reason: record.reason } : {}),
          ...(record.duration_ms !== undefined ? { duration_ms: record.duration_ms } : {}),
        },
      });
    } catch (err) {
      // no evidence of the request: it must never be approvable
      await this.#transition(record.id, (r) => ({ ...r, status: "cancelled", end_reason: "evidence unavailable" }));
      throw err;
    }
    this.#schedule(record);
    this.#notify("approval.requested", record);
    return record;
  }

  /** One approver's vote. Throws VoteRefusedError or ApprovalNotFoundError; returns the record after the vote. */
  async vote(id: string, approver: Identity, vote: "approve" | "deny", reason?: string): Promise<ApprovalRecord> {
    const { before, after } = await this.#transition(id, (r) => applyVote(r, approver, vote, reason, this.#now()));
    const who = toAuditIdentity(approver);
    const why = after.votes.at(-1)?.reason;
    let final = after;
    if (after.status === "granted") {
      const validFor = after.kind === "access" ? (after.duration_ms ?? 0) : this.settings.retryWindowMs;
      if (after.kind !== "hold") {
        // the window starts at the grant, not at the request
        final = (
          await this.#transition(id, (r) => ({
            ...r,
            valid_until: new Date(Date.parse(r.decided_at ?? r.created_at) + validFor).toISOString(),
          }))
        ).after;
      }
    }
    const base = { identity: who, connection: after.connection, decision: "approve" as const, rule: after.rule.path };
    const common = {
      approval_id: id,
      kind: after.kind,
      requester: after.requester.subject,
      ...(why ? { reason: why } : {}),
    };
    const event: AuditEventInput =
      after.status === "granted"
        ? {
            ...base,
            type: "approval.granted",
            data: {
              ...common,
              approvers: approversOf(after),
              ...(final.valid_until ? { valid_until: final.valid_until } : {}),
            },
          }
        : after.status === "denied"
          ? { ...base, type: "approval.denied", data: common }
          : {
              ...base,
              type: "approval.vote",
              data: {
                ...common,
                vote,
                approvals: approversOf(after).length,
                min_approvals: after.min_approvals,
              },
            };
    try {
      await this.#audit.append(event);
    } catch (err) {
      // the decision has no evidence: undo it where nothing else changed it meanwhile, and report the failure
      await this.#transition(id, (r) => (r.version === final.version ? { ...before, version: r.version } : r)).catch(
        () => undefined,
      );
      throw err;
    }
    if (final.status !== "pending") {
      this.#unschedule(id);
      this.#notify(final.status === "granted" ? "approval.granted" : "approval.denied", final);
      this.#bus.publish(id);
    }
    return final;
  }

  /** Ends a pending request (client gone, session closed, restart). Returns undefined when it was not pending. */
  async cancel(id: string, reason: string): Promise<ApprovalRecord | undefined> {
    return this.#end(id, "cancelled", reason);
  }

  /** Resolves when the request is no longer pending (granted, denied, expired, cancelled). */
  waitForDecision(id: string): Promise<ApprovalRecord> {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = (): void => {
        this.#store.getApproval(id).then(
          (r) => {
            if (done) return;
            if (!r) {
              done = true;
              unsubscribe();
              reject(new ApprovalNotFoundError(id));
            } else if (r.status !== "pending") {
              done = true;
              unsubscribe();
              resolve(r);
            }
          },
          (err: unknown) => {
            if (done) return;
            done = true;
            unsubscribe();
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        );
      };
      const unsubscribe = this.#bus.subscribe(id, check);
      check(); // it may have been decided before we subscribed
    });
  }

  /** The identity's live access grant for a connection, if any (the newest one lasting longest). */
  async activeGrant(identity: Identity, connection: string): Promise<ApprovalRecord | undefined> {
    const now = this.#now().getTime();
    const grants = await this.#store.listApprovals({
      statuses: ["granted"],
      kind: "access",
      connection,
      requesterSubject: identity.subject,
    });
    return grants
      .filter((g) => g.requester.issuer === identity.issuer && Date.parse(g.valid_until ?? "") > now)
      .sort((a, b) => Date.parse(b.valid_until ?? "") - Date.parse(a.valid_until ?? ""))[0];
  }

  /** Uses up a granted `hold: 0` request matching `exactKey` (once), or returns undefined. */
  async consumeRetry(exactKey: string): Promise<ApprovalRecord | undefined> {
    const now = this.#now().getTime();
    const granted = await this.#store.listApprovals({ statuses: ["granted"], kind: "retry", exactKey });
    for (const g of granted) {
      if (Date.parse(g.valid_until ?? "") <= now) continue;
      const used = { ...g, status: "consumed" as const };
      if (await this.#store.updateApproval(used)) return used;
    }
    return undefined;
  }

  /** A still-pending `hold: 0` request for the same exact request, so a retrying client does not pile them up. */
  async pendingRetry(exactKey: string): Promise<ApprovalRecord | undefined> {
    const now = this.#now().getTime();
    const pending = await this.#store.listApprovals({ statuses: ["pending"], kind: "retry", exactKey });
    return pending.find((p) => Date.parse(p.expires_at) > now);
  }

  /** How to approve `id`: the CLI command, and the URL when the gateway knows its public address. */
  instructions(id: string): Pick<ApprovalEvent, "commands" | "links"> {
    const base = this.settings.publicUrl?.replace(/\/+$/, "");
    return {
      commands: { approve: `gatehouse approvals approve ${id}`, deny: `gatehouse approvals deny ${id} --reason ...` },
      ...(base
        ? {
            links: {
              view: `${base}/approvals/${id}`,
              approve: `${base}/approvals/${id}?action=approve`,
              deny: `${base}/approvals/${id}?action=deny`,
            },
          }
        : {}),
    };
  }

  async #end(id: string, status: "expired" | "cancelled", reason: string): Promise<ApprovalRecord | undefined> {
    let changed = false;
    const { after } = await this.#transition(id, (r) => {
      if (r.status !== "pending") return r;
      changed = true;
      return { ...r, status, end_reason: reason, decided_at: this.#now().toISOString() };
    });
    if (!changed) return undefined;
    this.#unschedule(id);
    // the transition stands even if its evidence fails: ending a request can only refuse, never let through
    await this.#audit
      .append({
        type: `approval.${status}`,
        identity: after.requester,
        connection: after.connection,
        ...(after.session_id !== undefined ? { session_id: after.session_id } : {}),
        decision: "approve",
        rule: after.rule.path,
        data: { approval_id: id, kind: after.kind, reason },
      })
      .catch((err: unknown) => this.#log("approval event not recorded", { approval_id: id, error: String(err) }));
    this.#notify(`approval.${status}`, after);
    this.#bus.publish(id);
    return after;
  }

  /** Read, change, compare-and-set; again on a concurrent change. `change` returning its input writes nothing. */
  async #transition(
    id: string,
    change: (r: ApprovalRecord) => ApprovalRecord,
  ): Promise<{ before: ApprovalRecord; after: ApprovalRecord }> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const before = await this.#store.getApproval(id);
      if (!before) throw new ApprovalNotFoundError(id);
      const after = change(before);
      if (after === before) return { before, after };
      if (await this.#store.updateApproval(after)) return { before, after: { ...after, version: after.version + 1 } };
    }
    throw new VoteRefusedError("not_pending", `approval request ${id} keeps changing; try again`);
  }

  #schedule(record: ApprovalRecord): void {
    this.#unschedule(record.id);
    const delay = Math.max(0, Date.parse(record.expires_at) - this.#now().getTime());
    const timer = setTimeout(() => {
      this.#timers.delete(record.id);
      void this.#end(record.id, "expired", "no decision in time").catch((err: unknown) =>
        this.#log("approval expiry failed", { approval_id: record.id, error: String(err) }),
      );
    }, delay);
    timer.unref();
    this.#timers.set(record.id, timer);
  }

  #unschedule(id: string): void {
    const t = this.#timers.get(id);
    if (t) clearTimeout(t);
    this.#timers.delete(id);
  }

  #notify(type: ApprovalEventType, approval: ApprovalRecord): void {
    if (this.#notifiers.length === 0) return;
    const event: ApprovalEvent = { type, approval, ...this.instructions(approval.id) };
    for (const n of this.#notifiers) n.send(event);
  }
}
