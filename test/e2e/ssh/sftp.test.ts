/**
 * A refused SFTP operation is answered in SFTP itself: the client shows a permission failure, the target never
 * sees the operation, and the refusal is in the audit log.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sshConnectionYaml, testSshTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { startSshHarness, type SshHarness } from "./harness.js";

let h: SshHarness;
beforeAll(async () => {
  const extra = 'guardrails:\n  - deny: { patterns: ["sftp remove *"] }';
  h = await startSshHarness({
    connections: [sshConnectionYaml(testSshTarget(services()), { name: "files", group: "ci", extra })],
  });
}, 30_000);
afterAll(async () => {
  await h?.stop();
});

function sftp(batch: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const { args, env } = h.sshArgs("files", { auth: "key" });
  // sftp takes ssh's options, but -P for the port and the destination last
  const sftpArgs = args.map((a) => (a === "-p" ? "-P" : a));
  return new Promise((resolve) => {
    const child = spawn("sftp", ["-b", "-", ...sftpArgs], { env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(batch);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("sftp refusals", () => {
  it("a denied remove gets SSH_FX_PERMISSION_DENIED, leaves the file alone and is audited", async () => {
    // sshtest's sftp runs as sshtest: the file must be one it could delete
    const path = `/tmp/gatehouse-sftp-deny-${process.pid}-${randomBytes(4).toString("hex")}`;
    writeFileSync(path, "keep me");
    execFileSync("chown", ["sshtest", path]);
    try {
      // `-rm`: the batch goes on after the refusal, so the listing after it shows the session still works
      const r = await sftp(`-rm ${path}\nls -1 ${path}\n`);
      // OpenSSH's sftp names the SFTP status it got: "Permission denied" is SSH_FX_PERMISSION_DENIED
      expect(r.stderr).toMatch(new RegExp(`remote delete "?${path}"?: Permission denied`));
      expect(r.stdout).toContain(path);
      expect(existsSync(path)).toBe(true);
      const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 10_000 });
      const blocked = audit.filter((a) => a.type === "request.blocked" && a.connection === "files");
      expect(blocked.map((a) => (a.data as { text?: string }).text)).toEqual([`sftp remove ${path}`]);
      expect(blocked[0]?.rule).toMatch(/^connections\[\d+\]\.guardrails\[0\]$/);
    } finally {
      rmSync(path, { force: true });
    }
  }, 30_000);
});
