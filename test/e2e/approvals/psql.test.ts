/**
 * Just-in-time approval end to end: real psql and the pg driver through the gateway to the real PostgreSQL 15,
 * decisions through the real CLI as other identities, a real webhook receiver.
 */
import { createHmac } from "node:crypto";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway } from "../../../src/server/gateway.js";
import { startHarness, type Harness } from "../postgres/harness.js";
import { approver, eventually, gatehouse, pendingApproval, webhookReceiver, type Receiver } from "./support.js";

const SECRET = "e2e-webhook-secret-0123456789";
let h: Harness;
let hook: Receiver;
let alice: string;
let bob: string;

beforeAll(async () => {
  hook = await webhookReceiver(2);
  h = await startHarness({
    appDb: `
approvals:
  - require: { statements: [alter_table], tables: [gh_expire] }
    approvers: [group:dba]
    hold: 2s
  - require: { statements: [alter_table] }
    approvers: [group:dba]
    hold: 1m
  - require: { statements: [create_index] }
    approvers: [group:dba]
    min_approvals: 2
    hold: 1m
  - require: { statements: [update] }
    approvers: [group:dba]
    hold: 0
access_requests: { approvers: [group:dba], max: 2h }
`,
    top: `
approvals:
  url: http://gatehouse.test
  hold_zero_window: 5m
  notify:
    - webhook: { url: "${hook.url}", secret: ${SECRET} }
`,
  });
  alice = await approver(h, "alice");
  bob = await approver(h, "bob");
  const setup = await h.psql(
    "DROP TABLE IF EXISTS gh_appr, gh_deny, gh_expire, gh_two, gh_tx, gh_ext, gh_h0; " +
      "CREATE TABLE gh_appr (id int); CREATE TABLE gh_deny (id int); CREATE TABLE gh_expire (id int); " +
      "CREATE TABLE gh_two (id int); CREATE TABLE gh_tx (id int); CREATE TABLE gh_ext (id int); " +
      "CREATE TABLE gh_h0 (id int, v int); INSERT INTO gh_h0 VALUES (1, 0), (2, 0)",
  );
  expect(setup.code, setup.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await hook?.close();
});

const columns = async (table: string): Promise<string> =>
  (
    await h.psql(
      `SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '${table}'`,
    )
  ).stdout;

describe("held statements (psql)", () => {
  it("waits with a notice, is approved through the CLI by another identity, and completes", async () => {
    const run = h.psql("ALTER TABLE gh_appr ADD COLUMN approved int", { args: ["-v", "VERBOSITY=verbose"] });
    const pending = await pendingApproval(h, "hold");
    expect(pending).toMatchObject({ connection: "app-db", requester: { subject: "ci-bot" } });

    const self = await gatehouse(h, h.token, ["approvals", "approve", pending.id]);
    expect(self.code).not.toBe(0);
    expect(self.stderr).toMatch(/ci-bot made approval request .* cannot decide it/);
    const outsider = await gatehouse(h, h.strangerToken, ["approvals", "approve", pending.id]);
    expect(outsider.code).not.toBe(0);
    expect(outsider.stderr).toMatch(/stranger is not an approver/);

    const ls = await gatehouse(h, alice, ["approvals", "ls", "--json"]);
    expect((JSON.parse(ls.stdout) as { id: string }[]).map((a) => a.id)).toContain(pending.id);
    const ok = await gatehouse(h, alice, ["approvals", "approve", pending.id, "--reason", "planned migration"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe(`${pending.id}: granted`);

    const res = await run;
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(new RegExp(`NOTICE: .*held as approval request ${pending.id}`));
    expect(res.stderr).toContain(`gatehouse approvals approve ${pending.id}`);
    expect(await columns("gh_appr")).toBe("id,approved");

    const records = await h.gateway.store.tailAudit(40);
    const statement = records
      .filter((r) => r.type === "request" && r.data?.["text"] === "ALTER TABLE gh_appr ADD COLUMN approved int")
      .at(-1);
    expect(statement).toMatchObject({ decision: "approve", data: { approval_id: pending.id, approvers: ["alice"] } });
    const types = records.filter((r) => r.data?.["approval_id"] === pending.id).map((r) => r.type);
    expect(types).toEqual(["approval.requested", "approval.granted", "request"]);
  });

  it("a denial answers 42501 naming the request, and the session stays usable", async () => {
    const run = h.psql("ALTER TABLE gh_deny ADD COLUMN nope int", {
      args: ["-v", "VERBOSITY=verbose", "-v", "ON_ERROR_STOP=0"],
      input: "",
    });
    const pending = await pendingApproval(h, "hold");
    const no = await gatehouse(h, bob, ["approvals", "deny", pending.id, "--reason", "not today"]);
    expect(no.code, no.stderr).toBe(0);
    const res = await run;
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(
      new RegExp(`ERROR:  42501: gatehouse: approval denied by bob: not today \\(request ${pending.id}\\)`),
    );
    expect(await columns("gh_deny")).toBe("id");
  });

  it("expires after hold with 42501", async () => {
    const started = Date.now();
    const res = await h.psql("ALTER TABLE gh_expire ADD COLUMN late int", { args: ["-v", "VERBOSITY=verbose"] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/ERROR: {2}42501: gatehouse: approval expired: no decision by .* \(request a_\w+\)/);
    expect(await columns("gh_expire")).toBe("id");
  });

  it("2-of-N needs two distinct approvers", async () => {
    const run = h.psql("CREATE INDEX gh_two_idx ON gh_two (id)");
    const pending = await pendingApproval(h, "hold");
    const first = await gatehouse(h, alice, ["approvals", "approve", pending.id]);
    expect(first.stdout).toBe(`${pending.id}: approval recorded, 1 of 2 so far`);
    const again = await gatehouse(h, alice, ["approvals", "approve", pending.id]);
    expect(again.stderr).toMatch(/already voted/);
    expect((await h.gateway.approvals.service.get(pending.id))?.status).toBe("pending");
    const second = await gatehouse(h, bob, ["approvals", "approve", pending.id]);
    expect(second.stdout).toBe(`${pending.id}: granted`);
    expect((await run).code).toBe(0);
    expect((await h.psql("SELECT indexname FROM pg_indexes WHERE indexname = 'gh_two_idx'")).stdout).toBe("gh_two_idx");
  });

  it("a statement held inside BEGIN ... COMMIT resumes in the same transaction", async () => {
    const run = h.psql("", {
      input:
        "BEGIN;\nINSERT INTO gh_tx VALUES (1);\nALTER TABLE gh_tx ADD COLUMN c int;\nINSERT INTO gh_tx VALUES (2, 3);\nCOMMIT;\n",
    });
    const pending = await pendingApproval(h, "hold");
    await gatehouse(h, alice, ["approvals", "approve", pending.id]);
    const res = await run;
    expect(res.code, res.stderr).toBe(0);
    expect((await h.psql("SELECT count(*), max(c) FROM gh_tx")).stdout).toBe("2|3");
  });

  it("the extended protocol (pg driver, named statement) resumes after approval", async () => {
    const client = await h.client();
    const notices: string[] = [];
    client.on("notice", (n) => notices.push(n.message ?? ""));
    const run = client.query({ name: "held-alter", text: "ALTER TABLE gh_ext ADD COLUMN c int" });
    const pending = await pendingApproval(h, "hold");
    await gatehouse(h, alice, ["approvals", "approve", pending.id]);
    await run;
    const after = await client.query({ text: "SELECT c FROM gh_ext WHERE id = $1", values: [1] });
    expect(after.rowCount).toBe(0);
    expect(notices.join("\n")).toContain(pending.id);
  });

  it("a client that disconnects while it waits cancels its request", async () => {
    const client = await h.client();
    const run = client.query("ALTER TABLE gh_ext ADD COLUMN gone int").catch((err: Error) => err);
    const pending = await pendingApproval(h, "hold");
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    expect(await run).toBeInstanceOf(Error);
    const ended = await eventually(async () => {
      const r = await h.gateway.approvals.service.get(pending.id);
      return r?.status === "pending" ? undefined : r;
    });
    expect(ended).toMatchObject({ status: "cancelled" });
    const refused = await gatehouse(h, alice, ["approvals", "approve", pending.id]);
    expect(refused.stderr).toMatch(/was cancelled/);
    expect(await columns("gh_ext")).not.toContain("gone");
  });
});

describe("hold: 0 and access requests", () => {
  it("hold: 0 refuses with the request id; after approval the identical statement runs once", async () => {
    const sql = "UPDATE gh_h0 SET v = 5 WHERE id = 1";
    const first = await h.psql(sql, { args: ["-v", "VERBOSITY=verbose"] });
    expect(first.code).not.toBe(0);
    const m = /ERROR: {2}42501: .*approval request (a_\w+) is pending/.exec(first.stderr);
    expect(m, first.stderr).not.toBeNull();
    const id = m?.[1] ?? "";
    await gatehouse(h, alice, ["approvals", "approve", id]);
    // same shape, other literal: not what was approved
    expect((await h.psql("UPDATE gh_h0 SET v = 5 WHERE id = 2")).code).not.toBe(0);
    const second = await h.psql(sql);
    expect(second.code, second.stderr).toBe(0);
    expect((await h.psql("SELECT v FROM gh_h0 ORDER BY id")).stdout).toBe("5\n0");
    const third = await h.psql(sql);
    expect(third.code).not.toBe(0);
    expect(third.stderr).not.toContain(id);
  });

  it("time-window access: requested through the CLI, approved by someone else, then usable and attributed", async () => {
    const before = await h.psql("SELECT 1", { token: h.strangerToken });
    expect(before.code).not.toBe(0);
    const asked = await gatehouse(h, h.strangerToken, [
      "access",
      "request",
      "app-db",
      "--for",
      "30m",
      "--reason",
      "incident 7",
    ]);
    expect(asked.code, asked.stderr).toBe(0);
    const id = /^(a_\w+):/.exec(asked.stdout)?.[1] ?? "";
    expect((await gatehouse(h, h.strangerToken, ["approvals", "approve", id])).code).not.toBe(0);
    expect((await gatehouse(h, alice, ["approvals", "approve", id])).stdout).toMatch(/granted \(valid until /);
    const after = await h.psql("SELECT 42", { token: h.strangerToken });
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toBe("42");
    const use = await eventually(async () =>
      (await h.gateway.store.tailAudit(20)).find((r) => r.type === "request" && r.data?.["text"] === "SELECT 42"),
    );
    expect(use).toMatchObject({ identity: { subject: "stranger" }, data: { grant_id: id } });
  });
});

describe("notifications and restart", () => {
  it("the webhook receiver gets signed, verifiable payloads after failed attempts were retried", async () => {
    await h.gateway.approvals.service.flushNotifications();
    expect(hook.attempts).toBeGreaterThan(hook.deliveries.length);
    const first = hook.deliveries[0];
    expect(first).toBeDefined();
    const expected = `sha256=${createHmac("sha256", SECRET)
      .update(first?.body ?? "")
      .digest("hex")}`;
    expect(first?.headers["x-gatehouse-signature"]).toBe(expected);
    const body = JSON.parse(first?.body ?? "{}") as {
      type: string;
      approval: { id: string };
      links: { approve: string };
    };
    expect(body.type).toBe("approval.requested");
    expect(body.links.approve).toBe(`http://gatehouse.test/approvals/${body.approval.id}?action=approve`);
  });

  it("a request pending across a restart is cancelled, and approving it is refused", async () => {
    const run = h.psql("ALTER TABLE gh_appr ADD COLUMN after_restart int");
    const pending = await pendingApproval(h, "hold");
    const config = h.gateway.config;
    await h.gateway.stop("restart");
    const res = await run;
    expect(res.code).not.toBe(0);
    const again = await Gateway.start(config, { apiListen: { host: "127.0.0.1", port: 0 }, log: () => undefined });
    const restarted = { ...h, gateway: again };
    h = {
      ...restarted,
      stop: async () => {
        await again.stop("test");
        rmSync(restarted.dir, { recursive: true, force: true });
      },
    };
    const refused = await gatehouse(restarted, alice, ["approvals", "approve", pending.id]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(new RegExp(`approval request ${pending.id} was cancelled`));
    expect((await again.approvals.service.get(pending.id))?.status).toBe("cancelled");
  });
});
