import type { Decision } from "../policy/decide.js";
import { formatDuration } from "../policy/duration.js";
import { toAuditIdentity } from "../session/audit-identity.js";
import type {
  AccessGrant,
  AccessGrants,
  ApprovalHandler,
  GatedSession,
  GateRequest,
  HoldOutcome,
} from "../session/gate.js";
import { exactRequestKey, roughFingerprint } from "./keys.js";
import { approversOf } from "./rules.js";
import type { ApprovalService } from "./service.js";
import type { ApprovalRecord, HeldRequest } from "./types.js";

type ApproveDecision = Extract<Decision, { outcome: "approve" }>;

/**
 * What the gate calls for requests that need approval and for identities outside a connection's access list.
 * A held request waits here (the adapter awaits `hold` while its client waits) until the service reports a
 * decision; a `hold: 0` request is refused at once and its identical retry runs once after approval.
 */
export class ApprovalWorkflow implements ApprovalHandler, AccessGrants {
  /** Session id -> approval ids its requests wait on, so a closing session cancels them. */
  readonly #waiting = new Map<string, Set<string>>();

  constructor(readonly service: ApprovalService) {}

  async hold(session: GatedSession, request: GateRequest, decision: ApproveDecision): Promise<HoldOutcome> {
    const held: HeldRequest = {
      protocol: session.protocol,
      // approvers see what evidence shows (secrets redacted); the exact-retry key below uses the real request
      text: request.shown?.text ?? request.text,
      fingerprint: request.fingerprint ?? roughFingerprint(request.shown?.text ?? request.text),
      ...(request.parameters ? { parameters: request.shown?.parameters ?? request.parameters } : {}),
    };
    return decision.approval.hold === 0
      ? this.#holdZero(session, request, decision, held)
      : this.#holdLive(session, request, decision, held);
  }

  async sessionClosed(session: GatedSession): Promise<void> {
    const ids = this.#waiting.get(session.id);
    if (!ids) return;
    this.#waiting.delete(session.id);
    await Promise.all([...ids].map((id) => this.service.cancel(id, "the session ended while it waited")));
  }

  async find(identity: GatedSession["identity"], connection: string): Promise<AccessGrant | undefined> {
    const g = await this.service.activeGrant(identity, connection);
    return g && { id: g.id, until: new Date(g.valid_until ?? 0), approvers: approversOf(g), rule: g.rule.path };
  }

  async #holdLive(
    session: GatedSession,
    request: GateRequest,
    decision: ApproveDecision,
    held: HeldRequest,
  ): Promise<HoldOutcome> {
    const rule = decision.approval;
    const record = await this.service.request({
      kind: "hold",
      requester: session.identity,
      connection: session.connection.name,
      sessionId: session.id,
      request: held,
      rule: decision.rule,
      approvers: rule.approvers,
      minApprovals: rule.min_approvals,
      reasonRequired: rule.reason_required,
      pendingMs: rule.hold,
    });
    const id = record.id;
    let ids = this.#waiting.get(session.id);
    if (!ids) this.#waiting.set(session.id, (ids = new Set()));
    ids.add(id);
    const onAbort = (): void => void this.service.cancel(id, "the client disconnected while it waited").catch(() => {});
    request.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (request.signal?.aborted) onAbort();
      request.onHold?.({
        approvalId: id,
        rule: decision.rule,
        expiresAt: new Date(record.expires_at),
        message: this.#holdMessage(record, decision, rule.hold),
      });
      const final = await this.service.waitForDecision(id);
      return outcomeOf(final);
    } finally {
      request.signal?.removeEventListener("abort", onAbort);
      ids.delete(id);
      if (ids.size === 0) this.#waiting.delete(session.id);
      // a failed wait (store down) must not leave an approvable request behind a refused statement
      await this.service.cancel(id, "the gateway stopped waiting").catch(() => undefined);
    }
  }

  async #holdZero(
    session: GatedSession,
    request: GateRequest,
    decision: ApproveDecision,
    held: HeldRequest,
  ): Promise<HoldOutcome> {
    const rule = decision.approval;
    const key = exactRequestKey(
      toAuditIdentity(session.identity),
      session.connection.name,
      request.text,
      request.parameters,
    );
    const used = await this.service.consumeRetry(key);
    if (used) return { approved: true, approvalId: used.id, approvers: approversOf(used) };
    const record =
      (await this.service.pendingRetry(key)) ??
      (await this.service.request({
        kind: "retry",
        requester: session.identity,
        connection: session.connection.name,
        sessionId: session.id,
        request: held,
        exactKey: key,
        rule: decision.rule,
        approvers: rule.approvers,
        minApprovals: rule.min_approvals,
        reasonRequired: rule.reason_required,
        pendingMs: this.service.settings.pendingMs,
      }));
    const how = this.service.instructions(record.id);
    const window = formatDuration(this.service.settings.retryWindowMs);
    return {
      approved: false,
      approvalId: record.id,
      outcome: "pending",
      reason:
        `${decision.reason}: approval request ${record.id} is pending (${how.commands.approve}` +
        `${how.links ? ` or ${how.links.view}` : ""}); once approved, send the identical request again within ${window}`,
    };
  }

  #holdMessage(record: ApprovalRecord, decision: ApproveDecision, holdMs: number): string {
    const how = this.service.instructions(record.id);
    const n = record.min_approvals;
    return (
      `gatehouse: ${decision.reason}; held as approval request ${record.id}, waiting up to ${formatDuration(holdMs)} ` +
      `for ${n === 1 ? "an approval" : `${n} approvals`} from ${record.approvers.join(", ")}. ` +
      `Approve: ${how.commands.approve}${how.links ? ` or ${how.links.view}` : ""}`
    );
  }
}

function outcomeOf(record: ApprovalRecord): HoldOutcome {
  switch (record.status) {
    case "granted":
    case "consumed":
      return { approved: true, approvalId: record.id, approvers: approversOf(record) };
    case "denied": {
      const no = record.votes.find((v) => v.vote === "deny");
      const who = no ? ` by ${no.approver.subject}${no.reason ? `: ${no.reason}` : ""}` : "";
      return { approved: false, approvalId: record.id, outcome: "denied", reason: `approval denied${who}` };
    }
    case "expired":
      return {
        approved: false,
        approvalId: record.id,
        outcome: "expired",
        reason: `approval expired: no decision by ${record.expires_at}`,
      };
    default:
      return {
        approved: false,
        approvalId: record.id,
        outcome: "cancelled",
        reason: `approval request cancelled (${record.end_reason ?? "no longer waited for"})`,
      };
  }
}
