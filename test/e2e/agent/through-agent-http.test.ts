/**
 * HTTP where only the agent can reach the target (issue 16, "Done when"): the real compiled gateway in a network
 * namespace of its own, the test nginx on the host's 127.0.0.1 (out of the gateway's reach), a real `gatehouse agent`
 * on the host carrying the requests. With curl: an allowed request answered by nginx without the client's token, a
 * guardrail refusal (403 problem document) that nginx never sees, each recorded as through the agent.
 *
 * TLS: curl uses https (-k: the listener's certificate is the one the gateway generated). From the gateway's side
 * curl is remote (it comes from the host's end of the veth, not loopback), so the listener's default
 * `tls.require: remote` applies as in a real deployment; the test shows that plain http is refused.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { httpConnectionYaml, testHttpTarget } from "../../support/gateway-config.js";
import { startHttpTarget, type HttpTarget } from "../../support/http-target.js";
import { services } from "../../support/services.js";
import { run, startIsolatedGateway, waitFor, type AgentProcess, type IsolatedGateway } from "./isolated-gateway.js";

const RUN = randomUUID().slice(0, 8);
let gw: IsolatedGateway;
let agent: AgentProcess;
/** A target of the test's own on the host's 127.0.0.1, for a WebSocket (nginx here does not do them). */
let echo: HttpTarget;

/** nginx's access log lines (JSON) whose URI holds `marker`. */
function accessLog(marker: string): { uri: string; method: string; authorization: string }[] {
  return readFileSync(services().GH_TEST_HTTP_ACCESS_LOG, "utf8")
    .split("\n")
    .filter((l) => l.includes(marker))
    .map((l) => JSON.parse(l) as { uri: string; method: string; authorization: string });
}

async function curl(url: string, extra: string[] = []) {
  const r = await run("curl", [
    "-sS",
    "-k",
    "--max-time",
    "15",
    "-o",
    "-",
    "-w",
    "\n%{http_code} %{content_type}",
    "-H",
    `Authorization: Bearer ${gw.token}`,
    ...extra,
    url,
  ]);
  expect(r.code, r.stderr).toBe(0);
  const nl = r.stdout.lastIndexOf("\n");
  const [status, type] = r.stdout.slice(nl + 1).split(" ");
  return { status: Number(status), type: type ?? "", body: r.stdout.slice(0, nl) };
}

const base = (scheme = "https") => `${scheme}://${gw.host}:${gw.ports.http}`;

function dataText(r: AuditRecord): string {
  return String((r.data as { text?: unknown } | undefined)?.text ?? "");
}

beforeAll(async () => {
  const target = testHttpTarget(services());
  const { port } = new URL(target.url);
  echo = await startHttpTarget();
  gw = await startIsolatedGateway({
    label: "thruhttp",
    pinFrom: "serve",
    connections: [
      httpConnectionYaml(target, {
        group: "ci",
        extra: ["via: agent/office", "guardrails:", "  - deny: { methods: [DELETE] }"].join("\n"),
      }),
      // the same server without `via`: the gateway would have to dial it itself, from inside the namespace
      httpConnectionYaml(target, { name: "direct-web", group: "ci" }),
      httpConnectionYaml({ url: echo.url }, { name: "echo", group: "ci", extra: "via: agent/office" }),
    ],
    agentConnections: [
      { name: "web", host: "127.0.0.1", port: Number(port) },
      { name: "echo", host: "127.0.0.1", port: echo.port },
    ],
  });
  agent = await gw.startAgent();
}, 120_000);

afterAll(async () => {
  await gw?.close();
  await echo?.close();
});

describe("HTTP through the agent, the gateway isolated from the target", () => {
  it("curl over https reaches nginx through the agent, which never sees the client's token", async () => {
    const r = await curl(`${base()}/web/agent-${RUN}?x=1`);
    expect(r.status).toBe(200);
    expect(r.body).toBe(`ok GET /agent-${RUN}?x=1\n`);
    const [seen] = await waitFor("nginx's access log line", () => {
      const lines = accessLog(`agent-${RUN}`);
      return lines.length > 0 ? lines : undefined;
    });
    expect(seen).toMatchObject({ method: "GET", uri: `/agent-${RUN}?x=1` });
    expect(seen?.authorization).not.toContain(gw.token);

    const request = await gw.waitForAudit(
      "the GET",
      (a) => a.type === "request" && dataText(a) === `GET /agent-${RUN}?x=1`,
    );
    expect(request).toMatchObject({ decision: "allow", connection: "web" });
    const routes = gw.audit("session.route").filter((a) => a.session_id === request.session_id);
    expect(routes.length).toBeGreaterThan(0);
    for (const route of routes)
      expect(route).toMatchObject({
        connection: "web",
        data: { via: "agent/office", agent: "office", instance: agent.instance },
      });
  });

  // node:http writes message heads as strings, which an HTTP/2 stream on Node 20 could send as garbage (buffersOnly)
  it("a POST with a body reaches nginx through the agent intact", async () => {
    const r = await curl(`${base()}/web/agent-${RUN}-post`, [
      "-X",
      "POST",
      "--data-binary",
      "payload-through-the-agent",
    ]);
    expect(r.status).toBe(200);
    expect(r.body).toBe(`ok POST /agent-${RUN}-post\n`);
    const [seen] = await waitFor("nginx's access log line of the POST", () => {
      const lines = accessLog(`agent-${RUN}-post`);
      return lines.length > 0 ? lines : undefined;
    });
    expect(seen).toMatchObject({ method: "POST", uri: `/agent-${RUN}-post` });
  });

  it("one client connection, several requests: the session's pooled stream through the agent is reused", async () => {
    // curl sends both over one kept-alive connection: one gateway session, whose target pool keeps its stream
    const urls = ["one", "two", "three"].map((n) => `${base()}/web/agent-${RUN}-keep-${n}`);
    const r = await run("curl", ["-sS", "-k", "-H", `Authorization: Bearer ${gw.token}`, ...urls]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(["one", "two", "three"].map((n) => `ok GET /agent-${RUN}-keep-${n}\n`).join(""));
    const requests = await waitFor("the three requests", () => {
      const found = gw.audit("request").filter((a) => dataText(a).includes(`agent-${RUN}-keep-`));
      return found.length === 3 ? found : undefined;
    });
    expect(new Set(requests.map((a) => a.session_id)).size).toBe(1);
    const routes = gw.audit("session.route").filter((a) => a.session_id === requests[0]?.session_id);
    expect(routes).toHaveLength(1);
    expect(gw.gateway.child.exitCode).toBeNull();
  });

  it("a WebSocket through the agent: the upgrade is admitted and messages echo", async () => {
    const ws = new WebSocket(`wss://${gw.host}:${gw.ports.http}/echo/ws`, {
      headers: { authorization: `Bearer ${gw.token}` },
      rejectUnauthorized: false,
    });
    try {
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
      });
      const echoed = new Promise<string>((resolve) => ws.once("message", (d: Buffer) => resolve(d.toString())));
      ws.send(`hello through the agent ${RUN}`);
      expect(await echoed).toBe(`hello through the agent ${RUN}`);
    } finally {
      ws.close();
    }
    expect(echo.requests.some((q) => q.path === "/ws")).toBe(true);
    const start = gw.audit("session.start").filter((a) => a.connection === "echo");
    expect(start.length).toBeGreaterThan(0);
    const routes = gw.audit("session.route").filter((a) => a.connection === "echo");
    expect(routes.length).toBeGreaterThan(0);
    expect(routes[0]?.data).toMatchObject({ via: "agent/office", agent: "office", instance: agent.instance });
  });

  it("a denied request gets a 403 problem document and never reaches nginx", async () => {
    const r = await curl(`${base()}/web/agent-${RUN}-deny`, ["-X", "DELETE"]);
    expect(r.status).toBe(403);
    expect(r.type).toBe("application/problem+json");
    expect(JSON.parse(r.body)).toMatchObject({ status: 403, rule: "connections[0].guardrails[0]" });
    const blocked = await gw.waitForAudit(
      "the refused DELETE",
      (a) => a.type === "request.blocked" && dataText(a) === `DELETE /agent-${RUN}-deny`,
    );
    expect(blocked).toMatchObject({ decision: "deny", connection: "web" });
    // a later request's line is in nginx's log, and the refused one's is not
    expect((await curl(`${base()}/web/agent-${RUN}-after`)).status).toBe(200);
    await waitFor("the later request in nginx's log", () => accessLog(`agent-${RUN}-after`).length > 0);
    expect(accessLog(`agent-${RUN}-deny`)).toEqual([]);
  });

  it("the same server without the agent is out of the gateway's reach; plain http is refused", async () => {
    const r = await curl(`${base()}/direct-web/agent-${RUN}-direct`);
    expect(r.status).toBeGreaterThanOrEqual(500);
    expect(r.body).toMatch(/ECONNREFUSED/);
    expect(accessLog(`agent-${RUN}-direct`)).toEqual([]);
    expect(gw.audit("session.route").filter((a) => a.connection === "direct-web")).toEqual([]);

    const plain = await curl(`${base("http")}/web/agent-${RUN}-plain`);
    expect(plain.status).toBe(403);
    expect(plain.body).toMatch(/requires TLS/);
    expect(accessLog(`agent-${RUN}-plain`)).toEqual([]);
  });

  // last: it stops the gateway
  it("the stopped gateway's evidence verifies", async () => {
    expect(await gw.stopGateway()).toBe(0);
    const verify = await gw.cliRun(["audit", "verify", "--data", gw.data]);
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
  });
});
