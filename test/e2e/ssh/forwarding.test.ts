/**
 * Forwarding through the gateway is refused, and every attempt is in the audit log: local (-L) and remote (-R) port
 * forwarding, agent forwarding (-A) and X11 (-X), each requested by the real OpenSSH client so that the request
 * really reaches the gateway (not refused by the client before it connects).
 */
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { freePort } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { startSshHarness, type SshHarness } from "./harness.js";

let h: SshHarness;
beforeAll(async () => {
  h = await startSshHarness();
}, 30_000);
afterAll(async () => {
  await h?.stop();
});

async function refusedForwards(): Promise<AuditRecord[]> {
  const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
  return audit.filter((r) => r.type === "ssh.forward.refused");
}

/** Waits until the audit log has a refused forwarding of `kind` (records are written after the refusal). */
async function waitForRefusal(kind: string): Promise<AuditRecord> {
  for (let i = 0; i < 100; i++) {
    const hit = (await refusedForwards()).find((r) => (r.data as { kind?: string }).kind === kind);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ssh.forward.refused of kind ${kind} in the audit log`);
}

describe("ssh forwarding through the gateway", () => {
  it("-L: a connection to the client's forwarded port is refused by the gateway and recorded", async () => {
    const local = await freePort();
    const sshPort = services().GH_TEST_SSH_PORT;
    const { args, env } = h.sshArgs("app-host", { extra: ["-N", "-L", `${local}:127.0.0.1:${sshPort}`] });
    const child = spawn("ssh", args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      // the client listens once it has logged in; then a connection to it asks the gateway for direct-tcpip
      let received = "";
      for (let i = 0; ; i++) {
        const outcome = await new Promise<"closed" | "refused">((resolve) => {
          const s = connect(local, "127.0.0.1");
          s.on("data", (d: Buffer) => (received += d.toString()));
          s.on("error", () => resolve("refused"));
          s.on("close", () => resolve("closed"));
        });
        if (outcome === "closed") break;
        if (i > 100) throw new Error(`ssh -L never listened: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // nothing of the target (its SSH banner) came back through the refused channel
      expect(received).toBe("");
      const record = await waitForRefusal("direct-tcpip");
      expect(record.data).toMatchObject({ dest: `127.0.0.1:${sshPort}` });
      expect(record.identity).toMatchObject({ subject: "ci-bot" });
    } finally {
      child.kill("SIGTERM");
    }
  }, 30_000);

  it("-R: the remote forward is refused (the client says so) and recorded with where it asked to listen", async () => {
    const r = await h.ssh("app-host", "echo should-not-run", {
      extra: ["-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22"],
    });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/remote port forwarding failed/i);
    expect(r.stdout).toBe("");
    const record = await waitForRefusal("tcpip-forward");
    expect(record.data).toMatchObject({ listen: "127.0.0.1:0" });
  });

  it("-A: agent forwarding is refused (no agent socket on the target) and recorded", async () => {
    const sock = join(h.dir, "agent.sock");
    const agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
    try {
      for (let i = 0; i < 50; i++) {
        const up = await new Promise<boolean>((resolve) => {
          const s = connect(sock);
          s.on("connect", () => (s.destroy(), resolve(true)));
          s.on("error", () => resolve(false));
        });
        if (up) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const { args, env } = h.sshArgs("app-host", { extra: ["-A"] });
      const r = await new Promise<{ stdout: string; code: number | null }>((resolve) => {
        const child = spawn("ssh", [...args, "echo agent=$SSH_AUTH_SOCK"], {
          env: { ...env, SSH_AUTH_SOCK: sock },
          stdio: ["ignore", "pipe", "ignore"],
        });
        let stdout = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.on("close", (code) => resolve({ stdout, code }));
      });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("agent=\n");
      await waitForRefusal("auth-agent");
    } finally {
      agent.kill("SIGTERM");
    }
  });

  it("-X: X11 forwarding is refused (no DISPLAY on the target) and recorded", async () => {
    // without xauth (as on a machine with no X11 tools) the client still asks, with made-up cookie data
    const r = await h.ssh("app-host", "echo display=$DISPLAY", { extra: ["-X", "-o", "XAuthLocation=/nonexistent"] });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("display=\n");
    await waitForRefusal("x11");
  });

  it("a plain session records no forwarding attempt (OpenSSH's routine no-more-sessions is not one)", async () => {
    const r = await h.ssh("app-host", "echo plain");
    expect(r.stdout).toBe("plain\n");
    // the session's whole record: from its request to its session.end, which comes after anything it asked for
    const sessionOf = async () => {
      const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
      const id = audit.find(
        (a) => a.type === "request" && (a.data as { text?: string }).text === "echo plain",
      )?.session_id;
      return audit.filter((a) => id !== undefined && a.session_id === id);
    };
    let records = await sessionOf();
    for (let i = 0; i < 100 && !records.some((a) => a.type === "session.end"); i++) {
      await new Promise((r) => setTimeout(r, 50));
      records = await sessionOf();
    }
    expect(records.map((a) => a.type)).toContain("session.end");
    expect(records.filter((a) => a.type === "ssh.forward.refused")).toEqual([]);
  });
});
