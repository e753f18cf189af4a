import { existsSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSshHarness, type SshHarness } from "./harness.js";

let h: SshHarness;
beforeAll(async () => {
  h = await startSshHarness();
}, 30_000);
afterAll(async () => {
  await h?.stop();
});

describe("ssh exec through the gateway", () => {
  it.each(["token", "key", "cert"] as const)("runs uname -a with a %s", async (auth) => {
    const r = await h.ssh("app-host", "uname -a; whoami", { auth });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Linux .*\nsshtest\n$/);
  });

  it("targetuser%CONN picks the target user; a password-held target works too", async () => {
    expect((await h.ssh("sshtest%app-host", "whoami")).stdout).toBe("sshtest\n");
    expect((await h.ssh("pw-host", "echo pw-ok")).stdout).toBe("pw-ok\n");
  });

  it("a denied exec never runs on the target: exit 126 and the reason on stderr", async () => {
    const marker = `/tmp/gatehouse-ssh-marker-${process.pid}-${Date.now()}`;
    rmSync(marker, { force: true });
    const r = await h.ssh("app-host", `touch ${marker}; rm -rf ${marker}.d`);
    expect(r.code).toBe(126);
    expect(r.stderr).toMatch(/gatehouse: denied: .*rm -rf .*guardrails\[1\]/);
    expect(existsSync(marker)).toBe(false);
    const evasion = await h.ssh("app-host", `touch ${marker}; bash -c "r''m -rf ${marker}.d"`);
    expect(evasion.code).toBe(126);
    expect(existsSync(marker)).toBe(false);
    const allowed = await h.ssh("app-host", `touch ${marker} && echo made`);
    expect(allowed.stdout).toBe("made\n");
    expect(existsSync(marker)).toBe(true);
    rmSync(marker, { force: true });
  });

  it("a wrong token is refused at login", async () => {
    const r = await h.ssh("app-host", "true", { token: "gh_wrong" });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied/);
  });

  it("exit status and stdin pass through; output is masked", async () => {
    expect((await h.ssh("app-host", "exit 7")).code).toBe(7);
    expect((await h.ssh("app-host", "wc -c", { input: "12345" })).stdout.trim()).toBe("5");
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    const r = await h.ssh("app-host", `echo "token=${jwt}"`);
    expect(r.stdout).not.toContain(jwt);
  });

  it("port forwarding is refused", async () => {
    const r = await h.ssh("app-host", "true", { extra: ["-o", "ExitOnForwardFailure=yes", "-L", "0:127.0.0.1:22"] });
    expect(r.code).not.toBe(0);
  });

  it("a pinned host key mismatch refuses the session with a clear error", async () => {
    const r = await h.ssh("wrong-key-host", "echo should-not-run");
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/host key SHA256:\S+, which does not match the pinned host_key; refusing to connect/);
    expect(r.code).not.toBe(0);
  });
});
