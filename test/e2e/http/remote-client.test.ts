/**
 * The bearer token travels in a header, so by default (http.tls.require: remote) a client that is not on loopback
 * must use HTTPS. The test gives the machine a non-loopback address for its duration (on `lo`, so no packet leaves
 * the host), serves the HTTP listener there, and connects to it with curl over HTTP and over HTTPS.
 */
import { execFile, execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { gatewayYaml } from "../../support/gateway-config.js";
import { startHttpTarget, type HttpTarget } from "../../support/http-target.js";

const run = promisify(execFile);
const address = `10.214.${randomInt(0, 256)}.${randomInt(1, 255)}`;
const token = generateStaticToken();
let added = false;
let dir: string;
let target: HttpTarget;
let gateway: Gateway;

beforeAll(async () => {
  try {
    execFileSync("ip", ["addr", "add", `${address}/32`, "dev", "lo"], { stdio: ["ignore", "ignore", "pipe"] });
    added = true;
  } catch (err) {
    throw new Error(`cannot add ${address} to lo (needs root and iproute2): ${String(err)}`);
  }
  dir = mkdtempSync(join(tmpdir(), "gatehouse-http-remote-"));
  target = await startHttpTarget();
  const yaml = gatewayYaml({
    data: dir,
    tokens: [{ name: "ci-bot", sha256: token.sha256, groups: ["ci"] }],
    connections: [`  - { name: web, type: http, target: { url: "${target.url}" }, access: [group:ci] }`],
  });
  gateway = await Gateway.start(parseConfig(yaml, { source: "test.yaml", baseDir: dir }), {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { http: { host: address, port: 0 } },
    log: () => undefined,
  });
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await target?.close();
  if (added) execFileSync("ip", ["addr", "del", `${address}/32`, "dev", "lo"]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function curl(url: string) {
  const r = await run(
    "curl",
    ["-sS", "-k", "-o", "-", "-w", "\n%{http_code}", "-H", `Authorization: Bearer ${token.token}`, url],
    { encoding: "utf8" },
  );
  const nl = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
}

describe("HTTP listener: clients that are not on loopback", () => {
  it("are refused over plain HTTP before anything is judged or forwarded, and served over HTTPS", async () => {
    const port = (gateway.address("http") ?? "").split(":").at(-1);
    const plain = await curl(`http://${address}:${port}/web/echo`);
    expect(plain.status).toBe(403);
    expect(plain.body).toMatch(/requires TLS/);
    expect(target.requests).toHaveLength(0);
    expect((await gateway.store.readAudit({ limit: 1000 })).some((a) => a.type === "session.start")).toBe(false);
    const tls = await curl(`https://${address}:${port}/web/echo`);
    expect(tls.status).toBe(200);
    expect(target.requests).toHaveLength(1);
  });
});
