/**
 * The conformance driver for HTTP connections: curl as the client (HTTPS, one request per run) and, for a session
 * that stays open, node:https with a keep-alive agent holding exactly one client connection. The target is the Node
 * HTTP service of test/support/http-target.ts, which records every request it receives: that record is the witness.
 *
 * A request is written as the gateway records it, `METHOD /path?query`, and sent to `/<connection>/path?query`.
 * The allowed request is `GET /echo`, so the target echoes back the headers it got, the held bearer credential
 * among them: the gateway has to scrub it from the response. `-badcred` holds a bearer the target refuses: the
 * target's own 401 comes back to the client (for HTTP that is the target refusing the held credential; there is no
 * login at session start to fail).
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpAdapter } from "../../../src/protocols/http/adapter.js";
import { flowFields } from "../../support/gateway-config.js";
import { startHttpTarget, type HttpTarget } from "../../support/http-target.js";
import type { ClientOutcome, ConformanceDriver, DriverSession } from "../driver.js";
import { listenerCert, listenerTopYaml, listenerUrl } from "./http-listener.js";

const HELD = `gh-held-${randomUUID()}`;
const BAD_BEARER = `gh-wrong-${randomUUID()}`;
const TIMEOUT_MS = 20_000;

let target: HttpTarget | undefined;
let work: string | undefined;

function started<T>(v: T | undefined): T {
  if (v === undefined) throw new Error("the HTTP driver was not started");
  return v;
}

/** `METHOD /path?query` → its parts. */
function parse(request: string): { method: string; path: string } {
  const m = /^([A-Z]+) (\/\S*)$/.exec(request);
  if (!m) throw new Error(`not an HTTP request line: ${request}`);
  return { method: m[1] as string, path: m[2] as string };
}

function outcome(status: number, shown: string): ClientOutcome {
  return status >= 200 && status < 400 ? { ok: true, shown } : { ok: false, answer: status, shown };
}

function curl(port: number, connection: string, token: string, request: string): Promise<ClientOutcome> {
  const { method, path } = parse(request);
  const ca = join(started(work), "listener-ca.pem");
  const args = ["-sS", "--cacert", ca, "--max-time", String(TIMEOUT_MS / 1000), "-X", method];
  args.push("-H", `Authorization: Bearer ${token}`, "-o", "-", "-w", "\n%{http_code}");
  args.push(`${listenerUrl(port)}/${connection}${path}`);
  return new Promise((resolve) => {
    execFile("curl", args, { encoding: "utf8" }, (err, stdout, stderr) => {
      const nl = stdout.lastIndexOf("\n");
      const status = Number(stdout.slice(nl + 1));
      const shown = [stdout.slice(0, Math.max(nl, 0)), stderr].filter(Boolean).join("\n");
      // curl exits non-zero only when it got no HTTP answer at all (status 000)
      resolve(err && !status ? { ok: false, shown: `${shown}\n${err.message}` } : outcome(status, shown));
    });
  });
}

export const httpDriver: ConformanceDriver = {
  protocol: "http",
  adapter: httpAdapter,
  connection: "conf-web",
  async start() {
    target = await startHttpTarget({ requireBearer: HELD });
    work = mkdtempSync(join(tmpdir(), "gatehouse-conformance-http-"));
    writeFileSync(join(work, "listener-ca.pem"), listenerCert().certPem);
  },
  async stop() {
    await target?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  },
  get topYaml() {
    return listenerTopYaml();
  },
  connectionsYaml: () => {
    const url = started(target).url;
    return [
      `  - name: conf-web`,
      `    type: http`,
      `    target: { ${flowFields({ url, bearer: HELD })} }`,
      `    access: [group:ci]`,
      `    guardrails:`,
      `      - deny: { methods: [DELETE] }`,
      `  - name: conf-web-badcred`,
      `    type: http`,
      `    target: { ${flowFields({ url, bearer: BAD_BEARER })} }`,
      `    access: [group:ci]`,
    ].join("\n");
  },
  // the request is allowed and recorded, then the target stream cannot be opened: Bad Gateway
  unreachable: 502,
  dialsPerRequest: true,
  allowed: (m) => `GET /echo?marker=${m}`,
  denied: (m) => `DELETE /echo?marker=${m}`,
  // recorded as it arrives, before the target answers (and before the gateway relays that answer)
  targetSaw: (m) => Promise.resolve(started(target).requests.some((r) => r.url.includes(m))),
  once: curl,
  open(port, connection, token): Promise<DriverSession> {
    // one client connection, kept alive between requests: one gateway session
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: listenerCert().certPem });
    let connectionSocket: Socket | undefined;
    const run = (request: string) =>
      new Promise<ClientOutcome>((resolve, reject) => {
        const { method, path } = parse(request);
        const req = httpsRequest(
          {
            agent,
            host: "127.0.0.1",
            port,
            method,
            path: `/${connection}${path}`,
            headers: { authorization: `Bearer ${token}` },
            timeout: TIMEOUT_MS,
          },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => (body += d));
            res.on("end", () => resolve(outcome(res.statusCode ?? 0, body)));
            res.on("error", reject);
          },
        );
        req.on("socket", (s: Socket) => {
          connectionSocket ??= s;
          // a new client connection would be a new gateway session: this session would no longer be the one open
          if (s !== connectionSocket) req.destroy(new Error("the client connection was not kept between requests"));
        });
        req.on("timeout", () => req.destroy(new Error("no answer in time")));
        req.on("error", reject);
        req.end();
      });
    return Promise.resolve({ run, close: () => Promise.resolve(agent.destroy()) });
  },
  secrets: () => [HELD, BAD_BEARER],
};
