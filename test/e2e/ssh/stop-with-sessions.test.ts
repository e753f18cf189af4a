/**
 * Gateway.stop() while SSH clients are still connected: every session must end in the evidence (`session.end`
 * in the audit log, a sealed recording) before the gateway records its stop and closes the recorder and the log.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { verifyEvidence } from "../../../src/core/evidence/verify.js";
import { openStore } from "../../../src/core/store/open.js";
import { startSshHarness, type SshHarness } from "./harness.js";

let h: SshHarness | undefined;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  if (h) rmSync(h.dir, { recursive: true, force: true });
  h = undefined;
});

describe("gateway stop with live ssh sessions", () => {
  it("ends and seals every session before the evidence closes", async () => {
    const harness = await startSshHarness();
    h = harness;
    const n = 3;
    for (let i = 0; i < n; i++) {
      const { args, env } = harness.sshArgs("app-host");
      const child = spawn("ssh", [...args, "sleep 60"], { env, stdio: "ignore" });
      children.push(child);
    }
    // every command reached the target: its request record is in the log
    const deadline = Date.now() + 20_000;
    for (;;) {
      const records = await harness.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
      if (records.filter((r) => r.type === "request").length === n) break;
      if (Date.now() > deadline) throw new Error(`sessions did not start: ${harness.logs.join("\n")}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    await harness.gateway.stop("test");

    const store = await openStore({ dataDir: harness.dir, readonly: true });
    try {
      const records = await store.readAudit({ fromSeq: 1, limit: 100_000 });
      const started = records.filter((r) => r.type === "session.start").map((r) => r.session_id);
      const ended = records.filter((r) => r.type === "session.end").map((r) => r.session_id);
      expect(started).toHaveLength(n);
      expect(new Set(ended)).toEqual(new Set(started));
      for (const id of started) expect((await store.getSession(id as string))?.seal, `${id} sealed`).toBeDefined();
      // the sessions ended before the gateway recorded its own stop
      expect(records.at(-1)?.type).toBe("gateway.stop");
      const report = await verifyEvidence(store, { dataDir: harness.dir });
      expect(report).toMatchObject({ ok: true, sessions: { verified: n, sealed: n, unsealed: 0 } });
    } finally {
      await store.close();
    }
  });
});
