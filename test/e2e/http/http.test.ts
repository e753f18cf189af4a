/**
 * HTTP connections end to end: curl and the `ws` client through the gateway's HTTP listener to a real Node HTTP
 * service (test/support/http-target.ts) that records every request it received.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { readRecording } from "../../../src/core/evidence/recorder.js";
import { renderText } from "../../../src/core/evidence/replay.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { gatewayYaml } from "../../support/gateway-config.js";
import { startHttpTarget, USERS, type HttpTarget } from "../../support/http-target.js";

const run = promisify(execFile);
const HELD = "held-target-secret-7f3a";

let dir: string;
let gateway: Gateway;
let target: HttpTarget;
let base: string;
const ci = generateStaticToken();
const ops = generateStaticToken();

async function curl(args: string[], token: string | null = ci.token) {
  const auth = token === null ? [] : ["-H", `Authorization: Bearer ${token}`];
  const r = await run("curl", ["-sS", "-o", "-", "-w", "\n%{http_code} %{content_type}", ...auth, ...args], {
    encoding: "utf8",
  }).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? "", stderr: err.stderr ?? "" }));
  const nl = r.stdout.lastIndexOf("\n");
  const [status, type] = r.stdout.slice(nl + 1).split(" ");
  return { status: Number(status), type: type ?? "", body: r.stdout.slice(0, nl) };
}

/** Every recorded event of every session, once `until` holds for their JSON (events follow the answer by a little). */
async function recordingsWhen(until: (json: string) => boolean): Promise<string> {
  let recorded = "";
  for (let i = 0; i < 100; i++) {
    recorded = "";
    const sessions = (await auditRecords()).filter((a) => a.type === "session.start").map((a) => a.session_id);
    for (const id of sessions)
      for await (const e of readRecording(gateway.store, id ?? "")) recorded += JSON.stringify(e);
    if (until(recorded)) return recorded;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the recording never showed what the test waited for");
}

async function auditRecords(): Promise<AuditRecord[]> {
  return gateway.store.readAudit({ limit: 100_000 });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatehouse-http-"));
  target = await startHttpTarget({ requireBearer: HELD });
  const yaml = gatewayYaml({
    data: dir,
    tokens: [
      { name: "ci-bot", sha256: ci.sha256, groups: ["ci"] },
      { name: "ops-bot", sha256: ops.sha256, groups: ["ops"] },
    ],
    connections: [
      `  - name: web
    type: http
    target: { url: "${target.url}", bearer: "${HELD}" }
    access: [group:ci]
    guardrails:
      - deny: { methods: [DELETE], paths: ["/admin/*"] }
    approvals:
      - require: { methods: [POST], paths: ["/deploy/*"] }
        approvers: [group:ops]
        hold: 20s
    masking: { json_paths: ["$..password"], detectors: [credit_card] }`,
    ],
  });
  const config = parseConfig(yaml, { source: "test.yaml", baseDir: dir });
  gateway = await Gateway.start(config, {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { http: { host: "127.0.0.1", port: 0 } },
    log: () => undefined,
  });
  base = `http://${gateway.address("http") ?? ""}`;
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await target?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("HTTP connections through the gateway", () => {
  it("forwards an allowed request with the held credential instead of the client's token", async () => {
    const r = await curl([`${base}/web/echo?x=1`]);
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as { path: string; headers: Record<string, string> };
    expect(echo.path).toBe("/echo");
    const seen = target.requests.find((q) => q.url === "/echo?x=1");
    expect(seen?.headers.authorization).toBe(`Bearer ${HELD}`);
    expect(JSON.stringify(target.requests)).not.toContain(ci.token);
    const records = await auditRecords();
    expect(
      records.find((a) => a.type === "request" && (a.data as { text?: string }).text === "GET /echo?x=1"),
    ).toMatchObject({
      decision: "allow",
      connection: "web",
    });
  });

  it("refuses a denied request with an RFC 9457 problem, and the target never sees it", async () => {
    const r = await curl(["-X", "DELETE", `${base}/web/admin/users`]);
    expect(r.status).toBe(403);
    expect(r.type).toBe("application/problem+json");
    expect(JSON.parse(r.body)).toMatchObject({ status: 403, rule: "connections[0].guardrails[0]" });
    expect(target.requests.some((q) => q.path === "/admin/users")).toBe(false);
  });

  it("refuses a path that a target could read as another (dot segments, encoded slashes)", async () => {
    for (const path of ["/web/x/%2e%2e/admin/users", "/web/admin%2Fusers"]) {
      const r = await curl(["-X", "DELETE", "--path-as-is", `${base}${path}`]);
      expect(r.status).toBe(400);
    }
    expect(target.requests.some((q) => q.method === "DELETE")).toBe(false);
  });

  it("answers a missing or wrong token with 401 and forwards nothing", async () => {
    const before = target.requests.length;
    expect((await curl([`${base}/web/echo`], null)).status).toBe(401);
    expect((await curl([`${base}/web/echo`], "not-a-token")).status).toBe(401);
    expect(target.requests.length).toBe(before);
    const failed = (await auditRecords()).filter((a) => a.type === "auth.failed");
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(failed)).not.toContain("not-a-token");
  });

  it("masks JSON by path and by content detector, in the response and in the recording", async () => {
    const r = await curl([`${base}/web/users`]);
    expect(r.status).toBe(200);
    const raw = JSON.stringify(USERS);
    const passwords = [...raw.matchAll(/"password":"([^"]+)"/g)].map((m) => m[1] as string);
    expect(passwords.length).toBeGreaterThan(0);
    for (const p of passwords) expect(r.body).not.toContain(p);
    expect(r.body).toContain('"password":"********"');
    const cards = [...raw.matchAll(/\b(\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4})\b/g)].map((m) => m[1] as string);
    for (const c of cards) expect(r.body).not.toContain(c);
    // wait for the /users response event (its masked body) to be in the recording
    const recorded = await recordingsWhen((json) => json.includes("Grace Hopper"));
    for (const p of passwords) expect(recorded).not.toContain(p);
    // `gatehouse replay` shows the exchange: the request, then the response with what was masked
    const request = (await auditRecords()).find((a) => (a.data as { text?: string }).text === "GET /users");
    const session = await gateway.store.getSession(request?.session_id ?? "");
    const text = await renderText(
      session as NonNullable<typeof session>,
      readRecording(gateway.store, request?.session_id ?? ""),
    );
    expect(text).toMatch(
      /request\s+GET \/users\n.*\n.*response\s+200, application\/json[^,]*, \d+ bytes, \d+ values masked/,
    );
  });

  it("never lets the held credential out, even when the target echoes it", async () => {
    const r = await curl([`${base}/web/echo`]);
    expect(r.status).toBe(200);
    expect(target.requests.at(-1)?.headers.authorization).toBe(`Bearer ${HELD}`);
    expect(r.body).not.toContain(HELD);
    expect(JSON.parse(r.body)).toMatchObject({ headers: { authorization: "********" } });
    // every /echo response so far (this one included) was recorded with the credential scrubbed
    const echoes = target.requests.filter((q) => q.path === "/echo").length;
    const recorded = await recordingsWhen((json) => json.split("authorization").length - 1 >= echoes);
    expect(recorded).not.toContain(HELD);
    expect(JSON.stringify(await auditRecords())).not.toContain(HELD);
  });

  it("passes a chunked request body through, and records its size and hash", async () => {
    const body = Buffer.alloc(300_000, "x");
    const res = await fetch(`${base}/web/upload`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ci.token}` },
      // a stream body: fetch sends it chunked
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(body.subarray(0, 100_000));
          controller.enqueue(body.subarray(100_000));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    const sha256 = createHash("sha256").update(body).digest("hex");
    expect(await res.json()).toMatchObject({ bytes: 300_000, sha256 });
    // recorded once the exchange ended, which may be just after the client had its answer
    let found: unknown;
    for (let i = 0; i < 100 && !found; i++) {
      const sessions = (await auditRecords()).filter((a) => a.type === "session.start").map((a) => a.session_id);
      for (const id of sessions)
        for await (const e of readRecording(gateway.store, id ?? ""))
          if (e.kind === "request_body" && (e.data as { sha256?: string }).sha256 === sha256) found = e.data;
      if (!found) await new Promise((r) => setTimeout(r, 50));
    }
    // the connection masks JSON and the body is past record_body_bytes: kept by size and hash, not content
    expect(found).toEqual({ bytes: 300_000, sha256 });
  });

  it("streams a chunked response as it arrives", async () => {
    const started = Date.now();
    const res = await fetch(`${base}/web/stream?n=5&interval=200`, {
      headers: { authorization: `Bearer ${ci.token}` },
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    const firstAt = Date.now() - started;
    let text = Buffer.from(first.value ?? []).toString();
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      text += Buffer.from(next.value).toString();
    }
    const lastAt = Date.now() - started;
    expect(text.trim().split("\n")).toHaveLength(5);
    // the first line reached the client long before the target wrote the last one
    expect(lastAt - firstAt).toBeGreaterThan(500);
  });

  it("holds a request that needs approval until another identity approves it", async () => {
    const pending = curl(["-X", "POST", "-d", "{}", "-H", "content-type: application/json", `${base}/web/deploy/v2`]);
    let approvalId: string | undefined;
    for (let i = 0; i < 100 && !approvalId; i++) {
      approvalId = (await gateway.approvals.service.list({ statuses: ["pending"] }))[0]?.id;
      if (!approvalId) await new Promise((r) => setTimeout(r, 50));
    }
    expect(approvalId).toBeDefined();
    expect(target.requests.some((q) => q.path === "/deploy/v2")).toBe(false);
    await gateway.approvals.service.vote(
      approvalId as string,
      { subject: "ops-human", kind: "human", groups: ["ops"], issuer: "test", tokenId: "t1" },
      "approve",
    );
    const r = await pending;
    expect(r.status).toBe(200);
    expect(target.requests.some((q) => q.path === "/deploy/v2")).toBe(true);
  });

  it("answers malformed requests and broken TLS clearly, and keeps serving", async () => {
    const { hostname: host, port } = new URL(base);
    const raw = (bytes: Buffer) =>
      new Promise<string>((resolve) => {
        // written, not ended: a client that has not closed its side waits for the answer
        const socket = connect({ host, port: Number(port) }, () => socket.write(bytes));
        setTimeout(() => socket.destroy(), 5000);
        let got = "";
        socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
        socket.on("close", () => resolve(got));
        socket.on("error", () => resolve(got));
      });
    expect(await raw(Buffer.from("NOT AN HTTP REQUEST\r\n\r\n"))).toMatch(/^HTTP\/1\.1 400/);
    expect(await raw(Buffer.from("GET /web/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"))).toMatch(
      /^HTTP\/1\.1 400/,
    );
    // a TLS record header followed by garbage: a TLS alert (record type 21), then the connection closes
    const alert = await raw(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]), Buffer.from("junkjunk")]));
    expect(alert.charCodeAt(0)).toBe(0x15);
    expect((await curl([`${base}/web/echo`])).status).toBe(200);
  });

  it("passes a WebSocket through (echo), after admitting the upgrade", async () => {
    const ws = new WebSocket(`${base.replace("http:", "ws:")}/web/ws`, {
      headers: { authorization: `Bearer ${ci.token}` },
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const echoed = new Promise<string>((resolve) => ws.once("message", (d) => resolve(String(d))));
    ws.send("hello through the gateway");
    expect(await echoed).toBe("hello through the gateway");
    ws.close();
    const upgrade = target.requests.find((q) => q.path === "/ws");
    expect(upgrade?.headers.authorization).toBe(`Bearer ${HELD}`);
  });
});
