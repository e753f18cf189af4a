/**
 * `secrets: agent` for http and kubernetes connections: the agent is the HTTP origin. The gateway speaks plain HTTP
 * to it over the tunnel; the agent makes each request to its target with the credential only it holds (a bearer
 * token, a Kubernetes token), and scrubs that credential from what comes back. Guardrails and evidence stay at the
 * gateway, and no byte of a credential reaches the client, the gateway's data directory or its log.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatehouseAgent } from "../../../src/agent/agent.js";
import { parseAgentConfig } from "../../../src/agent/config.js";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { eventually } from "../../conformance/eventually.js";
import { gatewayYaml } from "../../support/gateway-config.js";
import { startHttpTarget, type HttpTarget } from "../../support/http-target.js";
import { startKubeApiServer, type KubeApiServer } from "../../support/kube-apiserver.js";
import { kubectlPath, runKubectl } from "../../support/kubectl.js";

const bot = generateStaticToken();
const agentToken = generateStaticToken();
/** The target's bearer token: only the agent's config has it. */
const HELD = `held-by-the-agent-${randomBytes(12).toString("hex")}`;
const MASK = "********";
/** Credentials of the other two http kinds, also only in the agent's config. */
const BASIC = { user: "svc", password: `pw-${randomBytes(12).toString("hex")}` };
const API_KEY = `key-${randomBytes(12).toString("hex")}`;
let basicTarget: HttpTarget;
let headerTarget: HttpTarget;
let gateway: Gateway;
let dataDir: string;
let target: HttpTarget;
let api: KubeApiServer;
let agent: GatehouseAgent;
let kubeconfig: string;
let base: string;
const logs: string[] = [];

function gatewayConfig(): string {
  const viaAgent = "    via: agent/office\n    secrets: agent";
  return gatewayYaml({
    data: dataDir,
    tokens: [{ name: "ci-bot", sha256: bot.sha256, groups: ["ci"] }],
    connections: [
      `  - name: web
    type: http
    target: { url: "${target.url}" }
    access: [group:ci]
${viaAgent}
    guardrails:
      - deny: { methods: [DELETE] }`,
      `  - name: cluster
    type: kubernetes
    target: { server: "${api.url}" }
    access: [group:ci]
${viaAgent}`,
      `  - name: basic-web
    type: http
    target: { url: "${basicTarget.url}" }
    access: [group:ci]
${viaAgent}`,
      `  - name: header-web
    type: http
    target: { url: "${headerTarget.url}" }
    access: [group:ci]
${viaAgent}`,
      // announced by the agent without credentials: refused at welcome, and its requests are refused
      `  - name: bare
    type: http
    target: { url: "${target.url}" }
    access: [group:ci]
${viaAgent}`,
    ],
    top: `listen: { agents: "127.0.0.1:1" }\nagents:\n  heartbeat: 1s\n  tokens:\n    - { name: office, sha256: ${agentToken.sha256} }`,
  });
}

function agentYaml(caFile: string): string {
  return [
    "name: office",
    `token: ${JSON.stringify(agentToken.token)}`,
    `gateway: { address: "${gateway.agentEndpoint?.address}", pin: "${gateway.agentEndpoint?.pin}" }`,
    "heartbeat: 1s",
    "reconnect: { min: 100ms, max: 500ms }",
    "connections:",
    `  - { name: web, target: { url: "${target.url}" }, credentials: { bearer: "\${env:WEB_TOKEN}" } }`,
    `  - name: cluster`,
    `    target: { url: "${api.url}", ca: "\${file:${caFile}}" }`,
    `    credentials: { token: "\${env:KUBE_TOKEN}" }`,
    `  - name: basic-web`,
    `    target: { url: "${basicTarget.url}" }`,
    `    credentials: { basic: { user: ${BASIC.user}, password: "\${env:BASIC_PASSWORD}" } }`,
    `  - name: header-web`,
    `    target: { url: "${headerTarget.url}" }`,
    `    credentials: { headers: { X-Api-Key: "\${env:API_KEY}" } }`,
    `  - { name: bare, target: { url: "${target.url}" } }`,
  ].join("\n");
}

async function audit(type?: string): Promise<AuditRecord[]> {
  await gateway.recorder.flush();
  return (await gateway.store.readAudit({ fromSeq: 1, limit: 1_000_000 })).filter((r) => !type || r.type === type);
}

async function get(path: string, init: RequestInit = {}) {
  const r = await fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${bot.token}`, ...(init.headers as Record<string, string> | undefined) },
  });
  return { status: r.status, headers: [...r.headers].map(([k, v]) => `${k}: ${v}`).join("\n"), body: await r.text() };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

beforeAll(async () => {
  await kubectlPath();
  dataDir = mkdtempSync(join(tmpdir(), "gatehouse-agent-http-secrets-"));
  target = await startHttpTarget({ requireBearer: HELD });
  basicTarget = await startHttpTarget({ requireBasic: BASIC });
  headerTarget = await startHttpTarget({ requireHeader: { name: "x-api-key", value: API_KEY } });
  api = await startKubeApiServer();
  gateway = await Gateway.start(parseConfig(gatewayConfig(), { source: "gatehouse.yaml", baseDir: dataDir }), {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { http: { host: "127.0.0.1", port: 0 } },
    agentsListen: { host: "127.0.0.1", port: 0 },
    log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`),
  });
  base = `http://${gateway.address("http") ?? ""}`;
  const clientDir = mkdtempSync(join(tmpdir(), "gatehouse-agent-http-secrets-client-"));
  const caFile = join(clientDir, "cluster-ca.pem");
  writeFileSync(caFile, api.caPem);
  kubeconfig = join(clientDir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // https with the listener's generated certificate: kubectl sends no bearer token over plain http
      clusters: [
        {
          name: "gw",
          cluster: {
            server: `https://${gateway.address("http") ?? ""}/cluster`,
            "certificate-authority-data": readFileSync(join(dataDir, "keys", "http-tls.crt")).toString("base64"),
          },
        },
      ],
      users: [{ name: "gw", user: { token: bot.token } }],
      contexts: [{ name: "gw", context: { cluster: "gw", user: "gw", namespace: "default" } }],
      "current-context": "gw",
    }),
  );
  const config = parseAgentConfig(agentYaml(caFile), {
    env: { WEB_TOKEN: HELD, KUBE_TOKEN: api.token, BASIC_PASSWORD: BASIC.password, API_KEY },
  });
  agent = new GatehouseAgent(config, {
    version: "test",
    log: (msg, fields) => logs.push(`agent: ${msg} ${JSON.stringify(fields ?? {})}`),
  });
  const connected = new Promise((resolve, reject) => {
    agent.once("connected", resolve);
    agent.once("refused", (why: string) => reject(new Error(`refused: ${why}`)));
  });
  agent.start();
  await connected;
  await eventually(async () => gateway.agents.status().some((a) => a.instances.length > 0));
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await gateway?.stop("test");
  await target?.close();
  await basicTarget?.close();
  await headerTarget?.close();
  await api?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe("secrets: agent for http and kubernetes", () => {
  it("the agent offers credential:http; a connection it holds nothing for is refused at welcome and per request", async () => {
    const [connected] = await audit("agent.connected");
    expect(connected?.data).toMatchObject({
      capabilities: ["tcp", "credential:http"],
      connections: ["web", "cluster", "basic-web", "header-web"],
      refused: [
        {
          connection: "bare",
          reason:
            'connection "bare" keeps its credentials on the agent (secrets: agent), and agent office holds no credentials for it',
        },
      ],
    });
    const r = await get("/bare/echo");
    expect(r.status).toBe(502);
    expect(r.body).toContain("agent office holds no credentials for it");
    expect(target.requests.some((q) => q.path === "/echo" && !q.authorized)).toBe(false);
  });

  it("a request gets the target's answer with the agent's token added, and the token scrubbed from what comes back", async () => {
    const r = await get("/web/echo?x=1");
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as { path: string; headers: Record<string, string> };
    expect(echo.path).toBe("/echo");
    // the target got the agent's credential, with its own Host, and never the client's token
    const seen = target.requests.find((q) => q.url === "/echo?x=1");
    expect(seen?.headers.authorization).toBe(`Bearer ${HELD}`);
    expect(seen?.headers.host).toBe(new URL(target.url).host);
    expect(JSON.stringify(target.requests)).not.toContain(bot.token);
    // it echoed the token; the client sees the mask instead
    expect(echo.headers.authorization).toBe(MASK);
    expect(`${r.headers}\n${r.body}`).not.toContain(HELD);

    const request = (await audit("request")).find((a) => (a.data as { text?: string }).text === "GET /echo?x=1");
    expect(request).toMatchObject({ decision: "allow", connection: "web" });
    const routes = (await audit("session.route")).filter((a) => a.session_id === request?.session_id);
    expect(routes.length).toBeGreaterThan(0);
    for (const route of routes)
      expect(route.data).toMatchObject({ via: "agent/office", agent: "office", credentials: "agent" });
  });

  it("basic and header credentials held by the agent: added to each request, a body passes, echoes are scrubbed", async () => {
    const basic = await get("/basic-web/echo", { method: "POST", body: "payload-1" });
    expect(basic.status, basic.body).toBe(200);
    const sawBasic = basicTarget.requests.find((q) => q.method === "POST");
    expect(sawBasic?.authorized).toBe(true);
    expect(sawBasic?.body.toString()).toBe("payload-1");
    expect(`${basic.headers}\n${basic.body}`).not.toContain(BASIC.password);
    expect(`${basic.headers}\n${basic.body}`).not.toContain(
      Buffer.from(`${BASIC.user}:${BASIC.password}`).toString("base64"),
    );
    const header = await get("/header-web/echo");
    expect(header.status).toBe(200);
    expect(headerTarget.requests.at(-1)?.headers["x-api-key"]).toBe(API_KEY);
    expect(headerTarget.requests.every((q) => q.authorized)).toBe(true);
    expect(`${header.headers}\n${header.body}`).not.toContain(API_KEY);
  });

  it("a guardrail still denies (403), and the target never sees the request", async () => {
    const r = await get("/web/echo?deny=1", { method: "DELETE" });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toMatchObject({ status: 403, rule: "connections[0].guardrails[0]" });
    expect(target.requests.some((q) => q.method === "DELETE")).toBe(false);
  });

  it("kubectl get pods and kubectl exec run with the token only the agent holds", async () => {
    const pods = await runKubectl(["get", "pods", "-A"], { kubeconfig });
    expect(pods.stderr).toBe("");
    expect(pods.stdout).toMatch(/^prod\s+api-6c7d9\s+1\/1\s+Running/m);
    const exec = await runKubectl(["exec", "web-7f9c4", "--", "echo", "hello-through-the-agent"], { kubeconfig });
    expect(exec.stderr).toBe("");
    expect(exec.code).toBe(0);
    expect(exec.stdout).toBe("hello-through-the-agent\n");
    expect(api.requests.length).toBeGreaterThan(0);
    for (const q of api.requests) expect(q.headers.authorization).toBe(`Bearer ${api.token}`);
    expect(JSON.stringify(api.requests)).not.toContain(bot.token);
    const routes = (await audit("session.route")).filter((a) => a.connection === "cluster");
    expect(routes.length).toBeGreaterThan(0);
    for (const route of routes) expect(route.data).toMatchObject({ agent: "office", credentials: "agent" });
  });

  it("no credential reaches the gateway's data directory or log", async () => {
    await audit();
    for (const file of filesUnder(dataDir)) {
      const bytes = readFileSync(file);
      expect(bytes.includes(HELD), file).toBe(false);
      expect(bytes.includes(api.token), file).toBe(false);
      expect(bytes.includes(BASIC.password), file).toBe(false);
      expect(bytes.includes(API_KEY), file).toBe(false);
    }
    const text = logs.join("\n");
    expect(text).not.toContain(HELD);
    expect(text).not.toContain(api.token);
    expect(text).not.toContain(BASIC.password);
    expect(text).not.toContain(API_KEY);
  });
});
