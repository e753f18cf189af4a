/**
 * The conformance driver for Kubernetes connections: the real kubectl as the client, against the stand-in API server
 * of test/support/kube-apiserver.ts, whose request log is the witness.
 *
 * A request is written as the gateway records it, `METHOD /api/...`: the API path carries the marker (a namespace
 * or an object name), so the audit record and the stand-in's log both show it.
 *
 * - `once()` runs `kubectl get|delete --raw /<connection>/api/...`. Typed commands (`kubectl get configmaps -n X`)
 *   first fetch the discovery documents, over several client connections at once: one kubectl run would then be
 *   several gateway sessions (and several `session.refused` when the session is refused), where the suite counts
 *   one per run. `--raw` sends exactly the one request. kubectl replaces the kubeconfig server's path by the raw
 *   path (client-go's RequestURI), so the raw path names the connection itself, as a user of the gateway would.
 *   kubectl's refusal is `Error from server (<Reason>): ...` and exit 1; the answer is the HTTP status that
 *   Kubernetes StatusReason stands for (`You must be logged in to the server` is kubectl's 401).
 * - `open()` runs `kubectl proxy --append-server-path`: kubectl holds the client connection to the gateway (one
 *   keep-alive connection, one gateway session) and each request of the session is sent through the proxy; the
 *   answer is the status the gateway gave, which the proxy passes on. kubectl itself keeps no connection from one
 *   run to the next.
 *
 * `-badcred` holds a token the API server refuses: its 401 reaches kubectl (`You must be logged in`).
 */
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { dirname } from "node:path";
import { httpAdapter } from "../../../src/protocols/http/adapter.js";
import { flowFields } from "../../support/gateway-config.js";
import { startKubeApiServer, type KubeApiServer } from "../../support/kube-apiserver.js";
import { kubectlPath, runKubectl, spawnKubectl, writeKubeconfig } from "../../support/kubectl.js";
import type { ClientOutcome, ConformanceDriver, DriverSession } from "../driver.js";
import { listenerCert, listenerTopYaml, listenerUrl } from "./http-listener.js";

const BAD_TOKEN = `gh-wrong-${randomUUID()}`;
const TIMEOUT_MS = 30_000;

let api: KubeApiServer | undefined;

function started(): KubeApiServer {
  if (!api) throw new Error("the Kubernetes driver was not started");
  return api;
}

/** `METHOD /path` → kubectl's raw verb for the method, and the path. */
function parse(request: string): { method: string; verb: string; path: string } {
  const m = /^(GET|DELETE) (\/\S*)$/.exec(request);
  if (!m) throw new Error(`not a GET or DELETE request line: ${request}`);
  return { method: m[1] as string, verb: m[1] === "GET" ? "get" : "delete", path: m[2] as string };
}

/** The HTTP status each Kubernetes StatusReason stands for (k8s.io/apimachinery metav1.StatusReason). */
const REASON_STATUS: Record<string, number> = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  NotAcceptable: 406,
  AlreadyExists: 409,
  Conflict: 409,
  Gone: 410,
  RequestEntityTooLarge: 413,
  UnsupportedMediaType: 415,
  Invalid: 422,
  TooManyRequests: 429,
  InternalError: 500,
  ServiceUnavailable: 503,
  Timeout: 504,
};

/** The status behind kubectl's error message, or undefined when it printed none. */
function kubectlStatus(stderr: string): number | undefined {
  if (/^error: You must be logged in to the server/m.test(stderr)) return 401;
  const reason = /^Error from server \((\w+)\)/m.exec(stderr)?.[1];
  return reason === undefined ? undefined : REASON_STATUS[reason];
}

/** A kubeconfig for the connection on the gateway's listener, as `gatehouse kubeconfig` writes one. */
const kubeconfigFor = (port: number, connection: string, token: string) =>
  writeKubeconfig({ server: `${listenerUrl(port)}/${connection}`, token, caPem: listenerCert().certPem });

export const kubernetesDriver: ConformanceDriver = {
  protocol: "kubernetes",
  adapter: httpAdapter,
  connection: "conf-kube",
  async start() {
    await kubectlPath();
    api = await startKubeApiServer();
  },
  async stop() {
    await api?.close();
  },
  get topYaml() {
    return listenerTopYaml();
  },
  connectionsYaml: () => {
    const { url: server, token, caPem: ca } = started();
    return [
      `  - name: conf-kube`,
      `    type: kubernetes`,
      `    target: { ${flowFields({ server, token, ca })} }`,
      `    access: [group:ci]`,
      `    guardrails:`,
      `      - deny: { verbs: [delete], resources: [configmaps] }`,
      `  - name: conf-kube-badcred`,
      `    type: kubernetes`,
      `    target: { ${flowFields({ server, token: BAD_TOKEN, ca })} }`,
      `    access: [group:ci]`,
    ].join("\n");
  },
  // the adapter's 502 is a Status with reason InternalError, which kubectl prints (REASON_STATUS: 500)
  unreachable: 500,
  dialsPerRequest: true,
  // the configmaps of a namespace named by the marker (an empty list): a read the API server serves
  allowed: (m) => `GET /api/v1/namespaces/${m}/configmaps`,
  denied: (m) => `DELETE /api/v1/namespaces/default/configmaps/${m}`,
  // the stand-in records a request as it arrives, before it answers
  targetSaw: (m) => Promise.resolve(started().saw((r) => r.path.includes(m) || r.query.includes(m))),
  async once(port, connection, token, request) {
    const { verb, path } = parse(request);
    const kubeconfig = kubeconfigFor(port, connection, token);
    try {
      const r = await runKubectl([verb, "--raw", `/${connection}${path}`], { kubeconfig, timeoutMs: TIMEOUT_MS });
      const shown = [r.stdout, r.stderr].filter(Boolean).join("\n");
      return r.code === 0 ? { ok: true, shown } : { ok: false, answer: kubectlStatus(r.stderr), shown };
    } finally {
      rmSync(dirname(kubeconfig), { recursive: true, force: true });
    }
  },
  async open(port, connection, token): Promise<DriverSession> {
    const kubeconfig = kubeconfigFor(port, connection, token);
    const proxy = await spawnKubectl(["proxy", "--port=0", "--append-server-path"], { kubeconfig });
    let proxyPort: number;
    try {
      proxyPort = Number((await proxy.waitFor(/Starting to serve on 127\.0\.0\.1:(\d+)/))[1]);
    } catch (err) {
      proxy.kill();
      rmSync(dirname(kubeconfig), { recursive: true, force: true });
      throw err;
    }
    const run = (request: string) =>
      new Promise<ClientOutcome>((resolve, reject) => {
        const { method, path } = parse(request);
        const req = httpRequest({ host: "127.0.0.1", port: proxyPort, method, path, timeout: TIMEOUT_MS }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            resolve(
              status >= 200 && status < 400 ? { ok: true, shown: body } : { ok: false, answer: status, shown: body },
            );
          });
          res.on("error", reject);
        });
        req.on("timeout", () => req.destroy(new Error("no answer in time")));
        req.on("error", reject);
        req.end();
      });
    return {
      run,
      close: async () => {
        proxy.kill();
        await proxy.result;
        rmSync(dirname(kubeconfig), { recursive: true, force: true });
      },
    };
  },
  secrets: () => [started().token, BAD_TOKEN],
};
