/**
 * SSH where only the agent can reach the target (issue 16, "Done when"): the real compiled gateway in a network
 * namespace of its own, the test OpenSSH server on the host's 127.0.0.1 (out of the gateway's reach), a real
 * `gatehouse agent` on the host carrying the sessions. With OpenSSH's own clients, logged in with a key registered
 * to an identity: exec, a guardrail refusal, an interactive PTY session (`ssh -tt`) with a typed line refused, and
 * sftp put/get, each recorded as through the agent; the PTY session replays as asciicast.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { sshConnectionYaml, testSshTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { sshClientArgs } from "../../support/ssh-client.js";
import {
  run,
  startIsolatedGateway,
  waitFor,
  watch,
  type AgentProcess,
  type IsolatedGateway,
} from "./isolated-gateway.js";

const RUN = randomUUID().slice(0, 8);
// the target shares this machine's /tmp: what a command did (or did not do) is visible here
const marker = `/tmp/gatehouse-thru-ssh-${RUN}`;
let gw: IsolatedGateway;
let agent: AgentProcess;
let ptySession = "";

/** ssh's options and destination for CONN, logged in with key-bot's registered key. */
function sshArgs(connection: string): string[] {
  return [
    ...sshClientArgs(gw.ports.ssh),
    "-o",
    "ConnectTimeout=10",
    "-o",
    "PreferredAuthentications=publickey",
    "-o",
    "BatchMode=yes",
    "-i",
    gw.sshKeyPath,
    `${connection}@${gw.host}`,
  ];
}

function ssh(connection: string, command: string) {
  return run("ssh", [...sshArgs(connection), command]);
}

function dataText(r: AuditRecord): string {
  return String((r.data as { text?: unknown } | undefined)?.text ?? "");
}

/** The one session.route of the session that has a request record matching `text`, once both are on record. */
async function routeOfRequest(what: string, text: (t: string) => boolean): Promise<AuditRecord> {
  const request = await gw.waitForAudit(what, (r) => r.type.startsWith("request") && text(dataText(r)));
  const routes = gw.audit("session.route").filter((r) => r.session_id === request.session_id);
  expect(routes).toHaveLength(1);
  expect(routes[0]).toMatchObject({
    connection: "app-host",
    data: { via: "agent/office", agent: "office", instance: agent.instance },
  });
  expect(routes[0]?.seq).toBeLessThan(request.seq);
  return routes[0] as AuditRecord;
}

beforeAll(async () => {
  const target = testSshTarget(services());
  const guardrails = [
    "guardrails:",
    "  - deny: { commands: [shutdown, reboot] }",
    '  - deny: { patterns: ["rm -rf *"] }',
  ];
  gw = await startIsolatedGateway({
    label: "thrussh",
    pinFrom: "serve",
    connections: [
      sshConnectionYaml(target, { group: "ci", extra: ["via: agent/office", ...guardrails].join("\n") }),
      // the same server without `via`: the gateway would have to dial it itself, from inside the namespace
      sshConnectionYaml(target, { name: "direct-host", group: "ci" }),
    ],
    agentConnections: [{ name: "app-host", host: target.host, port: target.port }],
  });
  agent = await gw.startAgent();
}, 120_000);

afterAll(async () => {
  await gw?.close();
  for (const p of [marker, `${marker}.pty`, `${marker}.sftp`]) rmSync(p, { recursive: true, force: true });
});

describe("SSH through the agent, the gateway isolated from the target", () => {
  it("exec runs on the target through the agent; the same server without the agent is out of the gateway's reach", async () => {
    const r = await ssh("app-host", `uname -s; whoami; echo ${RUN}-exec`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Linux\n${services().GH_TEST_SSH_USER}\n${RUN}-exec\n`);
    await routeOfRequest("the exec request", (t) => t.includes(`${RUN}-exec`));

    const direct = await ssh("direct-host", "echo should-not-run");
    expect(direct.code).not.toBe(0);
    expect(direct.stdout).toBe("");
    expect(direct.stderr).toMatch(/cannot connect to 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    expect(gw.audit("session.route").filter((r) => r.connection === "direct-host")).toEqual([]);
  });

  it("a denied command is refused at the gateway and never runs on the target", async () => {
    rmSync(marker, { force: true });
    const r = await ssh("app-host", `touch ${marker}; rm -rf ${marker}.d`);
    expect(r.code).toBe(126);
    expect(r.stderr).toMatch(/gatehouse: denied: .*rm -rf .*guardrails\[1\]/);
    expect(existsSync(marker)).toBe(false);
    const blocked = await gw.waitForAudit(
      "the refused exec",
      (a) => a.type === "request.blocked" && dataText(a).includes(marker),
    );
    expect(blocked).toMatchObject({ decision: "deny", connection: "app-host", rule: "connections[0].guardrails[1]" });
    await routeOfRequest("the refused exec", (t) => t.includes(marker));
  });

  it("ssh -tt: an interactive shell through the agent, a typed rm -rf stopped, the lines around it run", async () => {
    const dir = `${marker}.pty`;
    rmSync(dir, { recursive: true, force: true });
    const shell = watch(spawn("ssh", ["-tt", ...sshArgs("app-host")], { stdio: ["pipe", "pipe", "pipe"] }), "ssh -tt");
    const type = (line: string) => shell.child.stdin?.write(`${line}\r`);
    try {
      // the remote shell reads what is typed once it answers: probe until it does, rather than sleep a guess
      await waitFor("the remote shell", async () => {
        type(`echo ready-$((${RUN.length}+1))`);
        return (await shell.waitFor(new RegExp(`ready-${RUN.length + 1}`), 1_000).catch(() => undefined)) !== undefined;
      });
      type(`mkdir -p ${dir}; echo made-$((6*7))`);
      await shell.waitFor(/made-42/);
      type(`rm -rf ${dir}`);
      await shell.waitFor(/gatehouse: denied: .*rm -rf/);
      type(`echo still-$((1+1))`);
      await shell.waitFor(/still-2/);
      type("exit");
      expect(await shell.exited).toBe(0);
    } finally {
      shell.child.kill("SIGKILL");
    }
    expect(existsSync(dir)).toBe(true);
    const route = await routeOfRequest("the typed rm -rf", (t) => t === `rm -rf ${dir}`);
    ptySession = route.session_id ?? "";
    expect(gw.audit("request.blocked").some((a) => a.session_id === ptySession)).toBe(true);
  });

  it("sftp put and get through the agent, each file operation a request", async () => {
    const local = join(gw.dir, "upload.txt");
    const back = join(gw.dir, "download.txt");
    const remote = `${marker}.sftp`;
    writeFileSync(local, `through the agent ${RUN}\n`.repeat(2_000));
    // sftp takes ssh's options, but -P for the port
    const args = sshArgs("app-host").map((a) => (a === "-p" ? "-P" : a));
    const r = await run("sftp", ["-b", "-", ...args], { input: `put ${local} ${remote}\nget ${remote} ${back}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(remote, "utf8")).toBe(readFileSync(local, "utf8"));
    expect(readFileSync(back, "utf8")).toBe(readFileSync(local, "utf8"));
    await routeOfRequest("sftp put", (t) => t === `sftp put ${remote}`);
    const get = await gw.waitForAudit("sftp get", (a) => a.type === "request" && dataText(a) === `sftp get ${remote}`);
    expect(gw.audit("session.route").filter((a) => a.session_id === get.session_id)).toHaveLength(1);
  });

  // last: it stops the gateway
  it("the stopped gateway's evidence verifies, and the PTY session replays (asciicast, and its decisions)", async () => {
    expect(await gw.stopGateway()).toBe(0);
    const [verify, cast, text] = await Promise.all([
      gw.cliRun(["audit", "verify", "--data", gw.data]),
      gw.cliRun(["replay", ptySession, "--data", gw.data, "--format", "asciicast"]),
      gw.cliRun(["replay", ptySession, "--data", gw.data]),
    ]);
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
    expect(cast.code, cast.stderr).toBe(0);
    const [header, ...events] = cast.stdout.trim().split("\n");
    expect(JSON.parse(header ?? "{}")).toMatchObject({ version: 2 });
    const output = events
      .map((e) => JSON.parse(e) as [number, string, string])
      .filter((e) => e[1] === "o")
      .map((e) => e[2])
      .join("");
    expect(output).toContain("made-42");
    expect(output).toContain("still-2");
    // the refusal is a decision in the recording (the asciicast export carries terminal events only)
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/decision {2}deny by connections\[0\]\.guardrails\[1\]/);
  });
});
