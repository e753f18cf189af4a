import { createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AuditRecord } from "../core/evidence/audit-event.js";
import { verifyCheckpointNote } from "../core/evidence/segments/note.js";
import { parseConfig } from "../core/policy/loader.js";
import { Gateway } from "./gateway.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("Gateway", () => {
  it("forwards every committed audit record to the configured file and HTTP sinks, in seq order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-gw-"));
    dirs.push(dir);
    const received: AuditRecord[] = [];
    const siem = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        if (req.headers.authorization === "Bearer siem-secret") received.push(...(JSON.parse(body) as AuditRecord[]));
        res.writeHead(req.headers.authorization === "Bearer siem-secret" ? 204 : 401).end();
      });
    });
    await new Promise<void>((resolve) => siem.listen(0, "127.0.0.1", resolve));
    const siemPort = (siem.address() as AddressInfo).port;
    const config = parseConfig(
      `
data: ${dir}
audit:
  sinks:
    - file: ${join(dir, "audit.jsonl")}
    - http: { url: "http://127.0.0.1:${siemPort}/ingest", headers: { Authorization: "\${env:SIEM_TOKEN}" } }
`,
      { source: "test.yaml", baseDir: dir, env: { SIEM_TOKEN: "Bearer siem-secret" } },
    );
    const gateway = await Gateway.start(config, { apiListen: { host: "127.0.0.1", port: 0 } });
    try {
      const res = await fetch(`http://${gateway.api.address}/api/whoami`, {
        headers: { authorization: "Bearer not-a-real-token" },
      });
      expect(res.status).toBe(401);
    } finally {
      await gateway.stop("test");
      await new Promise((resolve) => siem.close(resolve));
    }
    const lines = readFileSync(join(dir, "audit.jsonl"), "utf8").trim().split("\n");
    const items = lines.map((l) => JSON.parse(l) as AuditRecord & { note?: string });
    // the final checkpoint follows the records it signs, as a signed note that verifies with the public key alone
    const checkpoint = items.at(-1);
    expect(checkpoint).toMatchObject({ type: "audit.checkpoint", writer: "w1", seq: 3 });
    expect(checkpoint?.hash).toBe(items[2]?.hash);
    const publicKey = createPublicKey(readFileSync(join(dir, "keys", "audit-signing.pem"), "utf8"));
    expect(verifyCheckpointNote(checkpoint?.note ?? "", publicKey)).toBe(true);
    expect(verifyCheckpointNote((checkpoint?.note ?? "").replace("\n3\n", "\n2\n"), publicKey)).toBe(false);
    const fromFile = items.slice(0, -1);
    expect(fromFile.map((r) => r.type)).toEqual(["gateway.start", "auth.failed", "gateway.stop"]);
    expect(fromFile.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(fromFile[1]?.prev_hash).toBe(fromFile[0]?.hash);
    expect(received.map((r) => r.hash)).toEqual(items.map((r) => r.hash));
  });
});
