import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { COLUMN_MASK } from "../core/masking/index.js";
import { readRecording } from "../core/evidence/recorder.js";
import { renderText } from "../core/evidence/replay.js";
import { verifyEvidence } from "../core/evidence/verify.js";
import { openStore } from "../core/store/open.js";
import { startDemo } from "./demo.js";
import { ADAPTERS } from "./adapters.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "gatehouse-demo-"));
  dirs.push(d);
  return d;
}

/** The id of the one pending approval request, as the approver sees it through the API. */
async function waitForPending(api: string, token: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${api}/api/approvals?status=pending`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { approvals: { id: string }[] };
    if (body.approvals[0]) return body.approvals[0].id;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("no pending approval request appeared");
}

describe("gatehouse demo", () => {
  it("proxies the embedded database with masking and guardrails, serves whoami, and leaves a verifiable log", async () => {
    const dataDir = tempDir();
    const any = { host: "127.0.0.1", port: 0 };
    const demo = await startDemo({ dataDir, api: any, postgres: any, cli: "gatehouse" });
    const api = `http://${demo.gateway.api.address}`;
    try {
      expect(demo.walkthrough).toContain(`export PGPASSWORD=${demo.token}`);
      expect(demo.walkthrough).toContain(`audit verify --data ${dataDir}`);

      const [host, port] = demo.postgres.split(":");
      const client = new pg.Client({
        host,
        port: Number(port),
        database: "demo-db",
        user: "demo-bot",
        password: demo.token,
      });
      await client.connect();
      try {
        const users = await client.query("SELECT id, email, password, note FROM users ORDER BY id");
        expect(users.rows[0]).toEqual({
          id: 1,
          email: COLUMN_MASK,
          password: COLUMN_MASK,
          note: "card on file **** **** **** 1111",
        });
        const drop = await client.query("DROP TABLE users").catch((e: { code?: string; message: string }) => e);
        expect(drop).toMatchObject({ code: "42501" });
        expect((drop as Error).message).toMatch(/connections\[0\]\.guardrails\[0\]/);
        // the session stays usable and the table is still there
        expect((await client.query("SELECT count(*)::int AS n FROM users")).rows[0]).toEqual({ n: 3 });

        // a schema change waits for the demo DBA; the bot cannot approve it itself
        const notices: string[] = [];
        client.on("notice", (n) => notices.push(n.message ?? ""));
        const altered = client.query("ALTER TABLE users ADD COLUMN nickname text");
        const pending = await waitForPending(api, demo.approverToken);
        const self = await fetch(`${api}/api/approvals/${pending}/approve`, {
          method: "POST",
          headers: { authorization: `Bearer ${demo.token}`, "content-type": "application/json" },
          body: "{}",
        });
        expect(self.status).toBeGreaterThanOrEqual(400);
        const ok = await fetch(`${api}/api/approvals/${pending}/approve`, {
          method: "POST",
          headers: { authorization: `Bearer ${demo.approverToken}`, "content-type": "application/json" },
          body: JSON.stringify({ reason: "reviewed" }),
        });
        expect(ok.status).toBe(200);
        await altered;
        expect(notices.join("\n")).toContain(pending);
        const columns = await client.query("SELECT nickname FROM users WHERE id = 1");
        expect(columns.rows).toEqual([{ nickname: null }]);
      } finally {
        await client.end();
      }

      const ok = await fetch(`${api}/api/whoami`, { headers: { authorization: `Bearer ${demo.token}` } });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ identity: { subject: "demo-bot", kind: "bot", groups: ["demo"] } });
      // same token with its signature's last characters changed
      const forged = demo.token.slice(0, -4) + (demo.token.endsWith("AAAA") ? "BBBB" : "AAAA");
      const bad = await fetch(`${api}/api/whoami`, { headers: { authorization: `Bearer ${forged}` } });
      expect(bad.status).toBe(401);
      expect(JSON.stringify(await bad.json())).not.toContain(forged);
    } finally {
      await demo.stop();
    }
    const store = await openStore({ dataDir, readonly: true, worker: false });
    try {
      const types = (await store.readAudit()).map((r) => r.type);
      expect(types[0]).toBe("gateway.start");
      expect(types).toContain("session.start");
      expect(types).toContain("request.blocked");
      expect(types).toContain("approval.granted");
      expect(types).toContain("auth.failed");
      expect(types.at(-1)).toBe("gateway.stop");
      expect((await verifyEvidence(store)).ok).toBe(true);

      // the recording replays as a timeline that holds what the client saw: masked values, the refusal
      const records = await store.readAudit();
      const sessionId = records.find((r) => r.type === "session.start")?.session_id ?? "";
      const session = await store.getSession(sessionId);
      expect(session?.seal?.reason).toBeDefined();
      const text = await renderText(session!, readRecording(store, sessionId));
      expect(text).toContain("request   SELECT id, email, password, note FROM users ORDER BY id");
      expect(text).toMatch(/1 +\| \*{8} +\| \*{8} +\| card on file \*\*\*\* \*\*\*\* \*\*\*\* 1111/);
      expect(text).toContain("decision  deny by connections[0].guardrails[0]");
      expect(text).not.toContain("ada@example.com");
      expect(text).not.toContain("4111 1111 1111 1111");
    } finally {
      await store.close();
    }
  });

  it("runs as `gatehouse demo`, prints the walkthrough and stops cleanly on SIGTERM", async () => {
    const dataDir = tempDir();
    const child = spawn(
      process.execPath,
      ["bin/gatehouse.js", "demo", "--data", dataDir, "--api", "127.0.0.1:0", "--postgres", "127.0.0.1:0"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<string>((resolve) => child.on("exit", (code, signal) => resolve(`${code}/${signal}`)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no walkthrough printed: ${out}`)), 20_000);
        child.stdout.on("data", () => {
          if (out.includes("Press Ctrl-C")) {
            clearTimeout(timer);
            resolve();
          }
        });
        exited.then((how) => reject(new Error(`demo exited early (${how}): ${out}${err}`)), reject);
      });
      expect(out).toMatch(/export PGPASSWORD=ey/);
      expect(out).toMatch(/psql "host=127\.0\.0\.1 port=\d+ dbname=demo-db user=demo-bot"/);
      // the walkthrough names exactly the adapters this build lacks
      const notBuilt = ADAPTERS.filter((l) => !l.load).map((l) => l.protocol);
      expect(out).toContain(`Not built yet: the ${notBuilt.join(", ")} adapters.`);
    } finally {
      // stop it whatever failed above, so a broken assertion never leaves a gateway running
      child.kill("SIGTERM");
    }
    const exit = await exited;
    expect({ exit, err }).toEqual({ exit: "0/null", err: "" });
  });
});
