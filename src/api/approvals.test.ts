import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateStaticToken } from "../core/identity/static-tokens.js";
import { parseConfig } from "../core/policy/loader.js";
import { Gateway } from "../server/gateway.js";

let gw: Gateway;
let dir: string;
const bot = generateStaticToken();
const dba = generateStaticToken();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatehouse-api-approvals-"));
  const config = parseConfig(
    `
data: ${dir}
identity:
  tokens:
    - { name: ci-bot, sha256: ${bot.sha256}, groups: [ci] }
    - { name: alice, sha256: ${dba.sha256}, groups: [dba], kind: human }
connections:
  - name: app-db
    type: postgres
    target: { host: 127.0.0.1, user: app }
    access: [group:ci]
    access_requests: { approvers: [group:dba], max: 1h }
  - name: closed-db
    type: postgres
    target: { host: 127.0.0.1, user: app }
    access: [group:ci]
`,
    { source: "test.yaml" },
  );
  gw = await Gateway.start(config, { apiListen: { host: "127.0.0.1", port: 0 }, log: () => undefined });
});

afterAll(async () => {
  await gw?.stop("test");
  rmSync(dir, { recursive: true, force: true });
});

const call = async (method: string, path: string, token?: string, body?: unknown) => {
  const res = await fetch(`http://${gw.api.address}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe("approval API", () => {
  it("needs the caller's own bearer identity", async () => {
    expect((await call("GET", "/api/approvals")).status).toBe(401);
    expect((await call("POST", "/api/approvals/a_x/approve", "nope", {})).status).toBe(401);
  });

  it("validates access requests and answers each refusal with its own status", async () => {
    const ask = (b: unknown) => call("POST", "/api/access-requests", bot.token, b);
    expect((await ask({ connection: "app-db", reason: "x" })).status).toBe(400);
    expect((await ask({ connection: "nope", duration: "30m", reason: "x" })).status).toBe(404);
    expect((await ask({ connection: "closed-db", duration: "30m", reason: "x" })).body).toMatchObject({
      code: "not_requestable",
    });
    expect((await ask({ connection: "app-db", duration: "2h", reason: "x" })).body).toMatchObject({
      code: "invalid_duration",
    });
    const ok = await ask({ connection: "app-db", duration: "30m", reason: "deploy" });
    expect(ok.status).toBe(201);
    const id = (ok.body["approval"] as { id: string }).id;

    expect((await call("POST", `/api/approvals/${id}/approve`, bot.token, {})).status).toBe(403);
    expect((await call("POST", `/api/approvals/a_missing/approve`, dba.token, {})).status).toBe(404);
    expect((await call("POST", `/api/approvals/${id}/approve`, dba.token, { reason: 5 })).status).toBe(400);
    const list = await call("GET", "/api/approvals", dba.token);
    expect((list.body["approvals"] as { id: string }[]).map((a) => a.id)).toEqual([id]);
    const granted = await call("POST", `/api/approvals/${id}/approve`, dba.token, { reason: "fine" });
    expect(granted.body["approval"]).toMatchObject({ status: "granted", approvals: 1 });
    expect((await call("POST", `/api/approvals/${id}/deny`, dba.token, {})).status).toBe(409);
    expect((await call("GET", "/api/approvals?status=bogus", dba.token)).status).toBe(400);
    const page = await fetch(`http://${gw.api.address}/approvals/${id}?action=approve`);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    expect(await page.text()).toContain(id);
  });
});
