import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { cleanupDirs, openEvidenceStack, tempDir } from "../../../test/support/evidence.js";
import { readRecording } from "../evidence/recorder.js";
import type { Identity } from "../identity/identity.js";
import { CompiledPolicy } from "../policy/decide.js";
import { factsFrom } from "../policy/facts.js";
import { parseConfig } from "../policy/loader.js";
import { Gate, SessionRefusedError, type HoldNotice } from "../session/gate.js";
import { requestAccess } from "./access.js";
import { createApprovals } from "./setup.js";
import { signBody } from "./webhooks.js";

const CONFIG = `
connections:
  - name: app-db
    type: postgres
    target: { host: 127.0.0.1, port: 5432, user: app, password: x }
    access: [group:ci]
    approvals:
      - require: { statements: [alter_table] }
        approvers: [group:dba]
        hold: 1s
      - require: { statements: [create_index] }
        approvers: [group:dba]
        min_approvals: 2
        reason_required: true
      - require: { statements: [update] }
        approvers: [group:dba]
        hold: 0
    access_requests: { approvers: [group:dba], max: 2h }
`;

const id = (subject: string, groups: string[], tokenId = subject): Identity => ({
  subject,
  kind: "human",
  groups,
  issuer: "gatehouse",
  tokenId,
});
const bot = { ...id("ci-bot", ["ci"]), kind: "bot" as const };
const alice = id("alice", ["dba"]);
const bob = id("bob", ["dba"]);
const mallory = id("mallory", ["web"]);
const q = (kind: string, text: string) => ({ text, facts: factsFrom({ statements: [{ kind, tables: ["t"] }] }) });
const alter = q("alter_table", "alter table t add column c int");

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  cleanupDirs();
});

async function setup(opts: { dir?: string; notify?: string } = {}) {
  const dir = opts.dir ?? tempDir("gatehouse-approvals-");
  const evidence = await openEvidenceStack(dir, { recorder: { flushIntervalMs: 10 } });
  const { store, audit, recorder } = evidence;
  const config = parseConfig(CONFIG + (opts.notify ?? ""), { source: "test.yaml" });
  const workflow = createApprovals(config.approvals, {
    store,
    audit,
    delivery: { baseDelayMs: 20 },
  });
  await workflow.service.start();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    workflow.service.stop();
    await evidence.close();
  };
  closers.push(close);
  const policy = CompiledPolicy.for(config);
  const gate = new Gate({ policy, audit, recorder, approvals: workflow, grants: workflow });
  return { dir, gate, store, workflow, policy, close };
}

/** Starts `admit` and resolves with its promise once the request is held (the notice arrived). */
async function held(
  session: Awaited<ReturnType<Gate["openSession"]>>,
  req: ReturnType<typeof q>,
  extra: { signal?: AbortSignal } = {},
) {
  let notice!: (n: HoldNotice) => void;
  const noticed = new Promise<HoldNotice>((r) => (notice = r));
  const admission = session.admit({ ...req, onHold: notice, ...extra });
  return { admission, notice: await noticed };
}

describe("approvals through the gate", () => {
  it("holds a request until another identity approves it; the statement's record names approval and approvers", async () => {
    const { gate, store, workflow } = await setup();
    const session = await gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" });
    const { admission, notice } = await held(session, alter);
    expect(notice.message).toMatch(/approval request a_\w+.*gatehouse approvals approve a_/);
    const approval = await workflow.service.get(notice.approvalId);
    expect(approval).toMatchObject({ status: "pending", kind: "hold", session_id: session.id });

    await expect(workflow.service.vote(notice.approvalId, bot, "approve")).rejects.toMatchObject({
      code: "self_approval",
    });
    // another identity holding the requester's credential id is the requester too
    await expect(
      workflow.service.vote(notice.approvalId, id("other", ["dba"], "ci-bot"), "approve"),
    ).rejects.toMatchObject({ code: "self_approval" });
    await expect(workflow.service.vote(notice.approvalId, mallory, "approve")).rejects.toMatchObject({
      code: "not_an_approver",
    });
    await workflow.service.vote(notice.approvalId, alice, "approve", "ok");
    expect(await admission).toMatchObject({ forward: true, approvalId: notice.approvalId });
    const last = await store.lastAudit();
    expect(last).toMatchObject({ type: "request", data: { approval_id: notice.approvalId, approvers: ["alice"] } });
    const types = (await store.tailAudit(4)).map((r) => r.type);
    expect(types).toEqual(["session.start", "approval.requested", "approval.granted", "request"]);
    await session.close("done");
    const notices: unknown[] = [];
    for await (const e of readRecording(store, session.id)) if (e.kind === "notice") notices.push(e.data);
    expect(notices).toEqual([
      expect.objectContaining({ held: notice.approvalId }),
      expect.objectContaining({ approved: notice.approvalId, approvers: ["alice"] }),
    ]);
  });

  it("2-of-N needs two distinct approvers and a reason; one deny ends it", async () => {
    const { gate, workflow } = await setup();
    const session = await gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" });
    const index = q("create_index", "create index i on t (c)");
    const first = await held(session, index);
    const svc = workflow.service;
    await expect(svc.vote(first.notice.approvalId, alice, "approve")).rejects.toMatchObject({
      code: "reason_required",
    });
    expect((await svc.vote(first.notice.approvalId, alice, "approve", "looks fine")).status).toBe("pending");
    await expect(svc.vote(first.notice.approvalId, alice, "approve", "again")).rejects.toMatchObject({
      code: "already_voted",
    });
    expect((await svc.vote(first.notice.approvalId, bob, "approve", "yes")).status).toBe("granted");
    expect(await first.admission).toMatchObject({ forward: true });

    const second = await held(session, index);
    await svc.vote(second.notice.approvalId, alice, "approve", "fine");
    await svc.vote(second.notice.approvalId, bob, "deny", "not during business hours");
    expect(await second.admission).toMatchObject({
      forward: false,
      kind: "approval_denied",
      approvalId: second.notice.approvalId,
      message: "approval denied by bob: not during business hours",
    });
    await expect(svc.vote(second.notice.approvalId, id("carol", ["dba"]), "approve", "x")).rejects.toMatchObject({
      code: "not_pending",
    });
  });

  it("expires when nobody decides within hold", async () => {
    const { gate, store } = await setup();
    const session = await gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" });
    const { admission, notice } = await held(session, alter);
    expect(await admission).toMatchObject({ forward: false, kind: "approval_expired", approvalId: notice.approvalId });
    const types = (await store.tailAudit(2)).map((r) => r.type);
    expect(types).toEqual(["approval.expired", "request.blocked"]);
  });

  it("a client that goes away cancels its request, and so does the session's end", async () => {
    const { gate, workflow } = await setup();
    const session = await gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" });
    const abort = new AbortController();
    const one = await held(session, alter, { signal: abort.signal });
    abort.abort();
    expect(await one.admission).toMatchObject({ kind: "approval_cancelled" });
    const two = await held(session, alter);
    await session.close("client closed");
    expect(await two.admission).toMatchObject({ kind: "approval_cancelled" });
    await expect(workflow.service.vote(two.notice.approvalId, alice, "approve")).rejects.toThrow(/cancelled/);
  });

  it("hold: 0 refuses now with the id; the identical request (exact text) runs once after approval", async () => {
    const { gate, workflow } = await setup();
    const session = await gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" });
    const upd = q("update", "update t set c = 1 where id = 7");
    const first = await session.admit(upd);
    expect(first).toMatchObject({ forward: false, kind: "approval_pending" });
    const approvalId = (first as { approvalId: string }).approvalId;
    expect((first as { message: string }).message).toContain(approvalId);
    // retrying before approval points at the same request instead of piling up new ones
    expect(await session.admit(upd)).toMatchObject({ kind: "approval_pending", approvalId });
    await workflow.service.vote(approvalId, alice, "approve");
    // same fingerprint, different literal: not the approved request
    expect(await session.admit(q("update", "update t set c = 1 where id = 8"))).toMatchObject({
      kind: "approval_pending",
    });
    const other = await gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" });
    expect(await other.admit(upd)).toMatchObject({ forward: true, approvalId });
    expect(await other.admit(upd)).toMatchObject({ forward: false, kind: "approval_pending" });
    expect((await workflow.service.get(approvalId))?.status).toBe("consumed");
  });

  it("time-window access: approved -> sessions open under the grant and every record names it", async () => {
    const { gate, workflow, policy, store } = await setup();
    const outsider = id("contractor", ["web"]);
    await expect(gate.openSession({ identity: outsider, connection: "app-db", protocol: "postgres" })).rejects.toThrow(
      SessionRefusedError,
    );
    await expect(
      requestAccess(workflow.service, policy, outsider, {
        connection: "app-db",
        durationMs: 3 * 3600_000,
        reason: "x",
      }),
    ).rejects.toThrow(/1m to 2h/);
    const req = await requestAccess(workflow.service, policy, outsider, {
      connection: "app-db",
      durationMs: 30 * 60_000,
      reason: "incident 42",
    });
    await expect(workflow.service.vote(req.id, outsider, "approve")).rejects.toMatchObject({ code: "self_approval" });
    const granted = await workflow.service.vote(req.id, alice, "approve");
    expect(Date.parse(granted.valid_until ?? "") - Date.parse(granted.decided_at ?? "")).toBe(30 * 60_000);
    const session = await gate.openSession({ identity: outsider, connection: "app-db", protocol: "postgres" });
    expect(session.grant?.id).toBe(req.id);
    expect(await store.lastAudit()).toMatchObject({ type: "session.start", data: { grant_id: req.id } });
    expect(await session.admit(q("select", "select 1"))).toMatchObject({ forward: true });
    expect(await store.lastAudit()).toMatchObject({ type: "request", data: { grant_id: req.id } });
    // guardrails and approvals still apply to a grant's sessions
    expect(await session.admit(q("update", "update t set c = 2"))).toMatchObject({ kind: "approval_pending" });
  });

  it("after a restart a held request is cancelled and approving it is refused clearly", async () => {
    const first = await setup();
    const session = await first.gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" });
    const { notice } = await held(session, alter);
    // the process dies: no session close, the record stays pending in the store
    await first.close();
    const second = await setup({ dir: first.dir });
    const record = await second.workflow.service.get(notice.approvalId);
    expect(record).toMatchObject({ status: "cancelled" });
    await expect(second.workflow.service.vote(notice.approvalId, alice, "approve")).rejects.toThrow(
      /was cancelled \(the gateway restarted while the client waited\)/,
    );
    expect((await second.store.tailAudit(5)).map((r) => r.type)).toContain("approval.cancelled");
  });
});

describe("notifications", () => {
  it("signs the webhook body and retries a failing receiver", async () => {
    const secret = "0123456789abcdef-secret";
    const received: { body: string; headers: IncomingMessage["headers"] }[] = [];
    let failures = 2;
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        if (failures-- > 0) {
          res.writeHead(503).end();
          return;
        }
        received.push({ body, headers: req.headers });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const { gate, workflow } = await setup({
      notify: `approvals:\n  url: https://gw.example\n  notify:\n    - webhook: { url: "${url}", secret: ${secret} }\n`,
    });
    const session = await gate.openSession({ identity: bot, connection: "app-db", protocol: "postgres" });
    const { notice } = await held(session, alter);
    await workflow.service.flushNotifications();
    expect(received).toHaveLength(1);
    const [delivery] = received;
    expect(delivery?.headers["x-gatehouse-signature"]).toBe(signBody(secret, delivery?.body ?? ""));
    const payload = JSON.parse(delivery?.body ?? "{}") as Record<string, unknown>;
    expect(payload).toMatchObject({
      type: "approval.requested",
      approval: { id: notice.approvalId, request: { text: alter.text } },
      links: { approve: `https://gw.example/approvals/${notice.approvalId}?action=approve` },
    });
    await workflow.service.vote(notice.approvalId, alice, "approve");
    await workflow.service.flushNotifications();
    expect(received.map((r) => (JSON.parse(r.body) as { type: string }).type)).toEqual([
      "approval.requested",
      "approval.granted",
    ]);
  });
});
