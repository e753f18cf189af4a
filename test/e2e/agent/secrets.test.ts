/**
 * `secrets: agent`: the gateway logs in to PostgreSQL (SCRAM-SHA-256 and md5) and OpenSSH with credentials only the
 * agent holds. The gateway drives each login and asks the agent's credential oracle for the steps that need the
 * secret; guardrails, masking and evidence stay at the gateway, and no byte of a secret reaches the gateway's data
 * directory or log.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatehouseAgent } from "../../../src/agent/agent.js";
import { parseAgentConfig } from "../../../src/agent/config.js";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { eventually } from "../../conformance/eventually.js";
import {
  flowFields,
  gatewayYaml,
  pgConnectionYaml,
  sshConnectionYaml,
  testPgTarget,
  testSshTarget,
} from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { sshClientArgs, TOKEN_LOGIN_ARGS, tokenLoginEnv } from "../../support/ssh-client.js";

const bot = generateStaticToken();
const agentToken = generateStaticToken();
const table = `agent_secrets_${randomUUID().slice(0, 8)}`;
const WRONG_PASSWORD = `not-the-password-${randomUUID()}`;
const MASK = "********";
let gateway: Gateway;
let dataDir: string;
let clientDir: string;
let agent: GatehouseAgent;
let stopped = false;
const logs: string[] = [];

/** The connections' targets without the password or key: with secrets: agent only the agent has those. */
function gatewayConfig(): string {
  const svc = services();
  const { password: _s, ...scram } = testPgTarget(svc, "scram");
  const { password: _m, ...md5 } = testPgTarget(svc, "md5");
  const { private_key: _k, ...ssh } = testSshTarget(svc);
  const viaAgent = "via: agent/office\nsecrets: agent";
  return gatewayYaml({
    data: dataDir,
    tokens: [{ name: "ci-bot", sha256: bot.sha256, groups: ["ci"] }],
    connections: [
      pgConnectionYaml(scram, {
        name: "scram-db",
        group: "ci",
        extra: `${viaAgent}\nguardrails:\n  - deny: { statements: [drop] }\nmasking: { columns: ["${table}.email"] }`,
      }),
      pgConnectionYaml(md5, { name: "md5-db", group: "ci", extra: viaAgent }),
      pgConnectionYaml(scram, { name: "wrong-db", group: "ci", extra: viaAgent }),
      // announced by the agent without credentials: refused at welcome, and its sessions are refused
      pgConnectionYaml(scram, { name: "bare-db", group: "ci", extra: viaAgent }),
      sshConnectionYaml(ssh, {
        name: "app-host",
        group: "ci",
        extra: `${viaAgent}\nguardrails:\n  - deny: { commands: [shutdown, reboot] }`,
      }),
    ],
    top: `listen: { agents: "127.0.0.1:1" }\nagents:\n  heartbeat: 1s\n  tokens:\n    - { name: office, sha256: ${agentToken.sha256} }`,
  });
}

function agentYaml(): string {
  const svc = services();
  const pgAt = `{ host: ${svc.GH_TEST_PG_HOST}, port: ${svc.GH_TEST_PG_PORT} }`;
  const sshAt = `{ host: ${svc.GH_TEST_SSH_HOST}, port: ${svc.GH_TEST_SSH_PORT} }`;
  const creds = (c: Record<string, string>) => `credentials: { ${flowFields(c)} }`;
  return [
    "name: office",
    `token: ${JSON.stringify(agentToken.token)}`,
    `gateway: { address: "${gateway.agentEndpoint?.address}", pin: "${gateway.agentEndpoint?.pin}" }`,
    "heartbeat: 1s",
    "reconnect: { min: 100ms, max: 500ms }",
    "connections:",
    `  - { name: scram-db, target: ${pgAt}, ${creds({ password: "${env:PG_SCRAM_PASSWORD}" })} }`,
    `  - { name: md5-db, target: ${pgAt}, ${creds({ password: "${env:PG_MD5_PASSWORD}" })} }`,
    `  - { name: wrong-db, target: ${pgAt}, ${creds({ password: WRONG_PASSWORD })} }`,
    `  - { name: bare-db, target: ${pgAt} }`,
    `  - { name: app-host, target: ${sshAt}, ${creds({ private_key: `\${file:${svc.GH_TEST_SSH_CLIENT_KEY}}` })} }`,
  ].join("\n");
}

async function audit(type: string): Promise<AuditRecord[]> {
  await gateway.recorder.flush();
  return (await gateway.store.readAudit({ fromSeq: 1, limit: 1_000_000 })).filter((r) => r.type === type);
}

function client(database: string): pg.Client {
  const address = gateway.address("postgres") ?? "";
  const c = new pg.Client({
    host: "127.0.0.1",
    port: Number(address.slice(address.lastIndexOf(":") + 1)),
    database,
    user: "ci-bot",
    password: bot.token,
    connectionTimeoutMillis: 10_000,
  });
  c.on("error", () => undefined);
  return c;
}

/** The target itself, with the real password (the test's own setup; never through the gateway). */
async function direct(sql: string): Promise<void> {
  const t = testPgTarget(services(), "scram");
  const c = new pg.Client({ host: t.host, port: t.port, database: t.database, user: t.user, password: t.password });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function ssh(command: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const address = gateway.address("ssh") ?? "";
  const args = [
    ...sshClientArgs(address.slice(address.lastIndexOf(":") + 1)),
    ...TOKEN_LOGIN_ARGS,
    "-o",
    "ConnectTimeout=10",
    "app-host@127.0.0.1",
    command,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", args, { env: tokenLoginEnv(clientDir, bot.token) });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`ssh timed out; stderr: ${stderr}`));
    }, 20_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.end();
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code: code ?? -1 });
    });
  });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "gatehouse-agent-secrets-"));
  clientDir = mkdtempSync(join(tmpdir(), "gatehouse-agent-secrets-client-"));
  await direct(`create table ${table} (id int, email text, name text)`);
  await direct(`insert into ${table} values (1, 'alice@example.com', 'Alice')`);
  gateway = await Gateway.start(parseConfig(gatewayConfig(), { source: "gatehouse.yaml", baseDir: dataDir }), {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { postgres: { host: "127.0.0.1", port: 0 }, ssh: { host: "127.0.0.1", port: 0 } },
    agentsListen: { host: "127.0.0.1", port: 0 },
    log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`),
  });
  const svc = services();
  const config = parseAgentConfig(agentYaml(), {
    env: { PG_SCRAM_PASSWORD: svc.GH_TEST_PG_SCRAM_PASSWORD, PG_MD5_PASSWORD: svc.GH_TEST_PG_MD5_PASSWORD },
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
  if (!stopped) await gateway?.stop("test");
  await direct(`drop table if exists ${table}`).catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(clientDir, { recursive: true, force: true });
});

describe("secrets: agent", () => {
  it("the agent offers the credential capabilities; a connection it holds nothing for is refused at welcome", async () => {
    const [connected] = await audit("agent.connected");
    expect(connected?.data).toMatchObject({
      capabilities: ["tcp", "credential:postgres", "credential:ssh"],
      connections: ["scram-db", "md5-db", "wrong-db", "app-host"],
      refused: [
        {
          connection: "bare-db",
          reason:
            'connection "bare-db" keeps its credentials on the agent (secrets: agent), and agent office holds no credentials for it',
        },
      ],
    });
    const c = client("bare-db");
    await expect(c.connect()).rejects.toThrow(
      /could not connect to the target of "bare-db": connection "bare-db" keeps its credentials on the agent \(secrets: agent\), and agent office holds no credentials for it/,
    );
  });

  it("PostgreSQL SCRAM-SHA-256: queries run, a guardrail denies, masking masks (catalog lookups go the same way)", async () => {
    const c = client("scram-db");
    await c.connect();
    expect((await c.query("SELECT current_user AS who")).rows).toEqual([{ who: services().GH_TEST_PG_SCRAM_USER }]);
    expect((await c.query(`SELECT email, name FROM ${table}`)).rows).toEqual([{ email: MASK, name: "Alice" }]);
    await expect(c.query(`DROP TABLE ${table}`)).rejects.toMatchObject({ code: "42501" });
    expect((await c.query("SELECT 1 AS still")).rows).toEqual([{ still: 1 }]);
    await c.end();
    const routes = (await audit("session.route")).filter((r) => r.connection === "scram-db");
    expect(routes.map((r) => (r.data as { purpose: string }).purpose).sort()).toEqual(["catalog", "session"]);
    for (const r of routes)
      expect(r.data).toMatchObject({ via: "agent/office", agent: "office", credentials: "agent" });
  });

  it("PostgreSQL md5", async () => {
    const c = client("md5-db");
    await c.connect();
    expect((await c.query("SELECT current_user AS who")).rows).toEqual([{ who: services().GH_TEST_PG_MD5_USER }]);
    await c.end();
  });

  it("a wrong password in the agent's config: the client gets the target's authentication failure", async () => {
    const c = client("wrong-db");
    const err = (await c.connect().then(
      () => undefined,
      (e: unknown) => e,
    )) as { code?: string; message: string };
    expect(err.code).toBe("28P01");
    expect(err.message).toMatch(/could not connect to the target of "wrong-db": password authentication failed/);
    const ended = (await audit("session.end")).filter((e) => e.connection === "wrong-db");
    expect(ended).toHaveLength(1);
  });

  it("SSH: OpenSSH's ssh runs a command on a target logged in with the agent's key; a guardrail still denies", async () => {
    const ok = await ssh("echo through-agent; whoami");
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toBe(`through-agent\n${services().GH_TEST_SSH_USER}\n`);
    expect(ok.code).toBe(0);
    const denied = await ssh("shutdown -h now");
    expect(denied.code).toBe(126);
    expect(denied.stderr).toMatch(/gatehouse: denied: /);
    const routes = (await audit("session.route")).filter((r) => r.connection === "app-host");
    expect(routes.length).toBe(2);
    for (const r of routes) expect(r.data).toMatchObject({ purpose: "session", credentials: "agent" });
  });

  // last: it stops the gateway so that everything it would write is on disk
  it("no password and no line of the key is in the gateway's data directory or log", async () => {
    await gateway.stop("test");
    stopped = true;
    const svc = services();
    const key = readFileSync(svc.GH_TEST_SSH_CLIENT_KEY, "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.length > 0 && !l.startsWith("-----"));
    const secrets = [svc.GH_TEST_PG_SCRAM_PASSWORD, svc.GH_TEST_PG_MD5_PASSWORD, WRONG_PASSWORD, ...key];
    expect(key.length).toBeGreaterThan(2);
    const files = filesUnder(dataDir);
    // the scan reads what the gateway wrote in the clear: the sessions' connection names are there
    expect(files.some((f) => readFileSync(f).includes("scram-db"))).toBe(true);
    for (const file of files) {
      const bytes = readFileSync(file);
      for (const secret of secrets) expect(bytes.includes(secret), `${secret.slice(0, 4)}... in ${file}`).toBe(false);
    }
    const log = logs.join("\n");
    expect(log).toContain("agent: connected to the gateway");
    for (const secret of secrets) expect(log.includes(secret), `${secret.slice(0, 4)}... in the log`).toBe(false);
  });
});
