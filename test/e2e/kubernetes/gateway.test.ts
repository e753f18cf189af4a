/**
 * The real kubectl through the gateway's HTTP listener to the stand-in API server (test/support/kube-apiserver.ts),
 * with a kubeconfig written by `gatehouse kubeconfig`. The stand-in logs every request it got, so each refusal is
 * also shown never to have reached it.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderAsciicast } from "../../../src/core/evidence/replay.js";
import { readRecording } from "../../../src/core/evidence/recorder.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { freePorts, gatewayYaml } from "../../support/gateway-config.js";
import { startKubeApiServer, SEED_SECRET_VALUES, type KubeApiServer } from "../../support/kube-apiserver.js";
import { kubectlPath, runKubectl, spawnKubectl } from "../../support/kubectl.js";

const CLI = new URL("../approvals/cli.ts", import.meta.url).pathname;

let dir: string;
let api: KubeApiServer;
let gateway: Gateway;
let kubeconfig: string;
const ci = generateStaticToken();
const b64 = (s: string) => Buffer.from(s).toString("base64");

function gatehouse(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
      env: { ...process.env, GATEHOUSE_TOKEN: ci.token },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const kubectl = (args: string[], o: { stdin?: string; config?: string } = {}) =>
  runKubectl(args, { kubeconfig: o.config ?? kubeconfig, ...(o.stdin !== undefined ? { stdin: o.stdin } : {}) });

beforeAll(async () => {
  await kubectlPath();
  dir = mkdtempSync(join(tmpdir(), "gatehouse-kube-"));
  const [apiPort, httpPort, gwApiPort] = await freePorts(3);
  api = await startKubeApiServer({ port: apiPort });
  const caFile = join(dir, "cluster-ca.pem");
  writeFileSync(caFile, api.caPem);
  const yaml = gatewayYaml({
    data: dir,
    listen: { api: gwApiPort as number, http: httpPort as number },
    tokens: [{ name: "ci-bot", sha256: ci.sha256, groups: ["ci"] }],
    connections: [
      `  - name: cluster
    type: kubernetes
    target: { server: "${api.url}", token: "${api.token}", ca: "\${file:${caFile}}" }
    access: [group:ci]
    guardrails:
      - deny: { verbs: [delete], resources: [namespaces] }
      - deny: { commands: [rm] }
    approvals:
      - require: { verbs: [delete], resources: [pods] }
        approvers: [group:ops]
        hold: 30s`,
    ],
  });
  const configFile = join(dir, "gatehouse.yaml");
  writeFileSync(configFile, yaml);
  gateway = await Gateway.start(parseConfig(yaml, { source: configFile, baseDir: dir }), { log: () => undefined });
  const printed = await gatehouse(["kubeconfig", "cluster", "--config", configFile]);
  expect(printed.stderr).toBe("");
  kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, printed.stdout);
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("kubectl through the gateway", () => {
  it("lists pods of every namespace with the held token; the client's token never reaches the cluster", async () => {
    const r = await kubectl(["get", "pods", "-A"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^prod\s+api-6c7d9\s+1\/1\s+Running/m);
    expect(r.stdout).toMatch(/^kube-system\s+coredns/m);
    const sent = api.requests.filter((q) => q.path === "/api/v1/pods");
    expect(sent.length).toBeGreaterThan(0);
    for (const q of api.requests) expect(q.headers.authorization).toBe(`Bearer ${api.token}`);
    expect(JSON.stringify(api.requests)).not.toContain(ci.token);
  });

  it("masks a Secret's values in get -o yaml", async () => {
    const r = await kubectl(["get", "secret", "-o", "yaml", "-A"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("password:");
    for (const value of Object.values(SEED_SECRET_VALUES)) {
      expect(r.stdout).not.toContain(value);
      expect(r.stdout).not.toContain(b64(value));
    }
    expect(r.stdout).toContain(b64("********"));
  });

  it("refuses delete ns prod with a Kubernetes Status kubectl prints; the cluster never sees it", async () => {
    const r = await kubectl(["delete", "ns", "prod"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Forbidden.*gatehouse:.*connections\[0\]\.guardrails\[0\]/s);
    expect(api.requests.some((q) => q.method === "DELETE")).toBe(false);
    const ns = await kubectl(["get", "ns", "prod"]);
    expect(ns.code).toBe(0);
  });

  it("streams kubectl logs -f", async () => {
    const p = await spawnKubectl(["logs", "-f", "web-7f9c4"], { kubeconfig });
    try {
      await p.waitFor(/log line 9\n/);
    } finally {
      p.kill();
    }
  });

  it("runs exec -it as a recorded terminal session, refusing a denied line like SSH", async () => {
    // the stand-in runs a real shell on this machine: a refused line would have removed this file
    const canary = join(dir, "canary");
    writeFileSync(canary, "still here");
    const p = await spawnKubectl(["exec", "-it", "web-7f9c4", "--", "sh"], { kubeconfig, wrapInPty: true });
    try {
      await p.waitFor(/[#$] $/);
      p.stdin?.write("echo $((6*7))\n");
      await p.waitFor(/\r\n42\r\n/);
      p.stdin?.write(`rm -f ${canary}\n`);
      await p.waitFor(/gatehouse: .*connections\[0\]\.guardrails\[1\]/);
      p.stdin?.write("exit\n");
      await p.result;
    } finally {
      p.kill();
    }
    expect(existsSync(canary)).toBe(true);
    const records = await gateway.store.readAudit({ limit: 100_000 });
    const start = records.filter((a) => a.type === "request" && (a.data as { verb?: string }).verb === "exec").at(-1);
    expect(start?.session_id).toBeDefined();
    const blocked = records.find(
      (a) => a.type === "request.blocked" && (a.data as { text?: string }).text === `rm -f ${canary}`,
    );
    expect(blocked).toMatchObject({ decision: "deny", rule: "connections[0].guardrails[1]" });
    const session = await gateway.store.getSession(start?.session_id as string);
    const cast = await renderAsciicast(
      session as NonNullable<typeof session>,
      readRecording(gateway.store, start?.session_id as string),
    );
    expect(cast).toContain("42");
  });

  it("judges the stdin of a shell run without a command string line by line (exec -i -- sh -c sh)", async () => {
    const canary = join(dir, "stdin-canary");
    writeFileSync(canary, "still here");
    const r = await kubectl(["exec", "-i", "web-7f9c4", "--", "sh", "-c", "sh"], {
      stdin: `echo first\nrm -f ${canary}\necho after\n`,
    });
    expect(r.stdout).toContain("first");
    expect(r.stdout).toContain("after");
    expect(r.stdout).toMatch(/gatehouse: .*connections\[0\]\.guardrails\[1\]/);
    expect(existsSync(canary)).toBe(true);
  });

  it("delivers a large exec output exactly once to a client that reads slowly", async () => {
    const expected = execFileSync("seq", ["1", "400000"], { maxBuffer: 64 << 20 });
    const child = spawn(
      await kubectlPath(),
      ["--kubeconfig", kubeconfig, "exec", "web-7f9c4", "--", "seq", "1", "400000"],
      {
        env: { ...process.env, HOME: dir, KUBECACHEDIR: join(dir, "kube-cache") },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout.pause();
    // kubectl stops reading its WebSocket while its stdout is full; the gateway must hold the target, not drop
    await new Promise((r) => setTimeout(r, 1500));
    const chunks: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => chunks.push(d));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(expected.length);
    expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(expected).digest("hex"));
  });

  it("watches: kubectl get pods -w prints a pod created afterwards, and Secret watch events stay masked", async () => {
    const p = await spawnKubectl(["get", "pods", "-w"], { kubeconfig });
    const secrets = await spawnKubectl(["get", "secrets", "-w", "-o", "json"], { kubeconfig });
    try {
      await p.waitFor(/worker-5d8b2/);
      await secrets.waitFor(/"kind": "Secret"/);
      api.create("pods", { apiVersion: "v1", kind: "Pod", metadata: { name: "late-pod", namespace: "default" } });
      api.create("secrets", {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "late-secret", namespace: "default" },
        data: { token: b64("late-secret-value-1234") },
      });
      await p.waitFor(/^late-pod\s/m);
      await secrets.waitFor(/late-secret/);
    } finally {
      p.kill();
      secrets.kill();
    }
    await secrets.result;
    expect(secrets.stdout).not.toContain(b64("late-secret-value-1234"));
    for (const value of Object.values(SEED_SECRET_VALUES)) expect(secrets.stdout).not.toContain(b64(value));
  });

  it("holds kubectl delete pod for approval; the cluster sees the DELETE only after another identity approves", async () => {
    const deleting = runKubectl(["delete", "pod", "worker-5d8b2", "--wait=false"], { kubeconfig });
    let approvalId: string | undefined;
    for (let i = 0; i < 200 && !approvalId; i++) {
      approvalId = (await gateway.approvals.service.list({ statuses: ["pending"] }))[0]?.id;
      if (!approvalId) await new Promise((r) => setTimeout(r, 50));
    }
    expect(approvalId).toBeDefined();
    expect(api.requests.some((q) => q.method === "DELETE")).toBe(false);
    const ops = { subject: "ops-human", kind: "human" as const, groups: ["ops"], issuer: "test", tokenId: "t1" };
    await gateway.approvals.service.vote(approvalId as string, ops, "approve");
    const r = await deleting;
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("deleted");
    expect(api.requests.some((q) => q.method === "DELETE" && q.path.endsWith("/pods/worker-5d8b2"))).toBe(true);
  });

  it("copies a file out with kubectl cp (exec of tar: binary stdout passes intact)", async () => {
    // the stand-in's containers are this machine: the file is read by a real tar
    const source = join(dir, "cp-source.bin");
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 256));
    writeFileSync(source, bytes);
    const copied = join(dir, "cp-copied.bin");
    const r = await kubectl(["cp", `default/web-7f9c4:${source}`, copied]);
    expect(r.code).toBe(0);
    expect(readFileSync(copied).equals(bytes)).toBe(true);
  });

  it("answers kubectl on an unknown connection with a Status it prints", async () => {
    const r = await kubectl(["get", "--raw", "/no-such-cluster/api/v1/pods"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/NotFound.*gatehouse: no connection named "no-such-cluster"/s);
  });

  it("kubeconfig --exec keeps the token out of the file: kubectl gets it from the credential plugin", async () => {
    const config = join(dir, "gatehouse.yaml");
    const printed = await gatehouse(["kubeconfig", "cluster", "--config", config, "--exec"]);
    expect(printed.stdout).not.toContain(ci.token);
    expect(printed.stdout).toMatch(/command: gatehouse\n\s+args:\n\s+- kubeconfig-credential/);
    const credential = await gatehouse(["kubeconfig-credential"]);
    expect(JSON.parse(credential.stdout)).toEqual({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token: ci.token },
    });
    const wrongType = await gatehouse(["kubeconfig", "nope", "--config", config]);
    expect(wrongType.code).toBe(1);
    expect(wrongType.stderr).toMatch(/no connection named "nope"/);
  });

  it("answers a wrong token with kubectl's Unauthorized error and forwards nothing", async () => {
    const before = api.requests.length;
    const bad = join(dir, "bad-kubeconfig");
    const printed = await gatehouse([
      "kubeconfig",
      "cluster",
      "--config",
      join(dir, "gatehouse.yaml"),
      "--token",
      "wrong",
    ]);
    writeFileSync(bad, printed.stdout);
    const r = await kubectl(["get", "pods"], { config: bad });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Unauthorized|logged in/);
    expect(api.requests.length).toBe(before);
  });
});
