/**
 * The HTTP test target (test/support/http-target.ts) does what the HTTP adapter's tests rely on.
 */
import { createHash } from "node:crypto";
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { startHttpTarget, USERS, type HttpTarget } from "./http-target.js";

let target: HttpTarget | undefined;
afterEach(async () => {
  await target?.close();
  target = undefined;
});

/** A request with a body sent in several chunks and no content-length (so chunked), answered as text. */
function chunkedPost(url: string, chunks: Buffer[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe("http-target", () => {
  it("echoes a request and records it as received", async () => {
    target = await startHttpTarget();
    const res = await fetch(`${target.url}/echo?a=1&a=2&b=x`, {
      method: "PATCH",
      headers: { "x-probe": "42", "content-type": "text/plain" },
      body: "hello",
    });
    expect(res.status).toBe(200);
    const echo = (await res.json()) as Record<string, unknown>;
    expect(echo).toMatchObject({ method: "PATCH", path: "/echo", query: { a: ["1", "2"], b: "x" }, body: "hello" });
    expect((echo.headers as Record<string, string>)["x-probe"]).toBe("42");
    expect(target.requests).toHaveLength(1);
    const r = target.requests[0]!;
    expect(r).toMatchObject({ method: "PATCH", url: "/echo?a=1&a=2&b=x", path: "/echo", authorized: true });
    expect(r.body.toString()).toBe("hello");
    expect(r.bodySha256).toBe(createHash("sha256").update("hello").digest("hex"));
    expect(r.rawHeaders).toContain("x-probe");
    expect(await (await fetch(`${target.url}/anything/else?q`)).text()).toBe("ok GET /anything/else?q\n");
    expect((await fetch(`${target.url}/status/503`)).status).toBe(503);
  });

  it("refuses requests without the required bearer, basic credential or header with 401, and records them", async () => {
    target = await startHttpTarget({ requireBearer: "held-secret" });
    const none = await fetch(`${target.url}/echo`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await fetch(`${target.url}/echo`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await fetch(`${target.url}/echo`, { headers: { authorization: "Bearer held-secret" } })).status).toBe(200);
    expect(target.requests.map((r) => r.authorized)).toEqual([false, false, true]);
    await target.close();

    target = await startHttpTarget({
      requireBasic: { user: "svc", password: "p:w" },
      requireHeader: { name: "X-Api-Key", value: "k1" },
    });
    const basic = `Basic ${Buffer.from("svc:p:w").toString("base64")}`;
    expect((await fetch(`${target.url}/`, { headers: { authorization: basic } })).status).toBe(401);
    expect((await fetch(`${target.url}/`, { headers: { "x-api-key": "k1" } })).status).toBe(401);
    expect((await fetch(`${target.url}/`, { headers: { authorization: basic, "x-api-key": "k1" } })).status).toBe(200);
  });

  it("serves /users with nested personal data", async () => {
    target = await startHttpTarget();
    const users = (await (await fetch(`${target.url}/users`)).json()) as typeof USERS;
    expect(users).toEqual(USERS);
    const first = users.users[0]!;
    expect(first.contact.email).toBe("ada@example.com");
    expect(first.session.token.split(".")).toHaveLength(3);
    const luhn = (digits: string) =>
      [...digits.replace(/\D/g, "")].reverse().reduce((sum, d, i) => {
        const n = Number(d) * (i % 2 ? 2 : 1);
        return sum + (n > 9 ? n - 9 : n);
      }, 0) %
        10 ===
      0;
    for (const u of users.users) expect(luhn(u.billing.card.number)).toBe(true);
  });

  it("streams /stream line by line: the first line arrives before the last is written", async () => {
    target = await startHttpTarget();
    const started = Date.now();
    const res = await fetch(`${target.url}/stream?n=5&interval=100`);
    const reader = res.body!.getReader();
    const first = Buffer.from((await reader.read()).value!).toString();
    const firstAt = Date.now() - started;
    expect(first).toBe("line 1\n");
    expect(firstAt).toBeLessThan(300);
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString();
    }
    expect(rest).toBe("line 2\nline 3\nline 4\nline 5\n");
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(res.headers.get("transfer-encoding")).toBe("chunked");
  });

  it("sends server-sent events on /sse", async () => {
    target = await startHttpTarget();
    const res = await fetch(`${target.url}/sse?n=2&interval=10`);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const body = await res.text();
    expect(body).toContain('id: 1\nevent: tick\ndata: {"n":1}\n');
    expect(body).toContain('id: 2\nevent: tick\ndata: {"n":2}\ndata: line two of event 2\n\n');
  });

  it("takes a chunked upload and answers its size and sha256", async () => {
    target = await startHttpTarget({ maxRecordedBody: 10 });
    const chunks = [Buffer.alloc(100_000, 1), Buffer.alloc(50_000, 2), Buffer.from("end")];
    const res = await chunkedPost(`${target.url}/upload`, chunks);
    const all = Buffer.concat(chunks);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      bytes: all.length,
      sha256: createHash("sha256").update(all).digest("hex"),
    });
    const r = target.requests[0]!;
    expect(r.headers["transfer-encoding"]).toBe("chunked");
    expect(r.bodyBytes).toBe(all.length);
    expect(r.body).toHaveLength(10);
  });

  it("echoes WebSocket text and binary frames on /ws, and refuses an upgrade without the credential", async () => {
    target = await startHttpTarget({ requireBearer: "ws-secret" });
    const ws = new WebSocket(`ws://127.0.0.1:${target.port}/ws`, { headers: { authorization: "Bearer ws-secret" } });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const next = () =>
      new Promise<{ data: Buffer; binary: boolean }>((resolve) =>
        ws.once("message", (data: Buffer, binary: boolean) => resolve({ data, binary })),
      );
    let reply = next();
    ws.send("hello");
    expect(await reply).toEqual({ data: Buffer.from("hello"), binary: false });
    reply = next();
    ws.send(Buffer.from([0, 1, 2, 255]));
    expect(await reply).toEqual({ data: Buffer.from([0, 1, 2, 255]), binary: true });
    ws.close();

    const refused = new WebSocket(`ws://127.0.0.1:${target.port}/ws`);
    refused.on("error", () => undefined); // terminate() below reports the refused handshake as an error
    const status = await new Promise<number>((resolve) =>
      refused.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)),
    );
    expect(status).toBe(401);
    refused.terminate();
    expect(target.requests.map((r) => [r.path, r.upgrade, r.authorized])).toEqual([
      ["/ws", true, true],
      ["/ws", true, false],
    ]);
  });
});
