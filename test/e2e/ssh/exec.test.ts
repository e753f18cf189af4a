import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, rmSync, writeFileSync } from "node:fs";
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

  it("a shell run as the exec command has its stdin judged line by line (ssh host bash < script)", async () => {
    // the target shares this machine's /tmp: a line that ran would have made or removed these
    const canary = `/tmp/gatehouse-ssh-canary-${process.pid}-${Date.now()}`;
    const made = `${canary}.made`;
    writeFileSync(canary, "still here");
    for (const command of ["bash", "sh -c sh"]) {
      const r = await h.ssh("app-host", command, { input: `echo first\nrm -rf ${canary}\ntouch ${made}\n` });
      expect(r.stdout).toContain("first");
      expect(r.stdout).toMatch(/gatehouse: .*guardrails\[1\]/);
      expect(existsSync(canary)).toBe(true);
      // the lines after a refused one still run
      expect(existsSync(made)).toBe(true);
      rmSync(made, { force: true });
    }
    rmSync(canary, { force: true });
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

  it("a pinned host key mismatch refuses the session with a clear error", async () => {
    const r = await h.ssh("wrong-key-host", "echo should-not-run");
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/host key SHA256:\S+, which does not match the pinned host_key; refusing to connect/);
    expect(r.code).not.toBe(0);
  });
});

/*
 * Large output on both streams, read by a slow real `ssh` client so that the SSH window is full again and again:
 * every byte must arrive once, on its own stream, with the exit status, and nothing may hang. This reproduces
 * ssh2 1.17's stale stalled-write record (docs/ssh.md, "Flow control"): without src/protocols/ssh/ssh2-window-fix.ts
 * the client gets stdout bytes twice and loses stderr, or the channel hangs.
 */

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/**
 * Runs `command` with the real ssh client, sending `input` on stdin, and reads its stdout and stderr slowly: nothing
 * for the first 500 ms, then one pipe read per 2 ms on each stream, so the client's window keeps filling up. A
 * channel that has not ended after 30 s (a write that is never resumed) fails the test.
 */
function slowSsh(
  command: string,
  input = Buffer.alloc(0),
): Promise<{ stdout: Buffer; stderr: Buffer; code: number | null }> {
  const { args, env } = h.sshArgs("app-host");
  const child = spawn("ssh", [...args, command], { env });
  const read = (stream: NodeJS.ReadableStream) => {
    const chunks: Buffer[] = [];
    stream.pause();
    setTimeout(() => stream.resume(), 500);
    stream.on("data", (b: Buffer) => {
      chunks.push(b);
      stream.pause();
      setTimeout(() => stream.resume(), 2);
    });
    return new Promise<Buffer>((resolve) => stream.on("end", () => resolve(Buffer.concat(chunks))));
  };
  const stdout = read(child.stdout);
  const stderr = read(child.stderr);
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error("ssh did not finish within 30 s (hung channel)"));
    }, 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      void Promise.all([stdout, stderr]).then(([out, err]) => resolve({ stdout: out, stderr: err, code }));
    });
  });
}

/** Byte count and sha256 of a command's stdout, computed on the target. */
async function onTarget(command: string): Promise<{ bytes: number; sha256: string }> {
  const r = await h.ssh("app-host", `(${command}) | tee >(sha256sum >&2) | wc -c`);
  expect(r.code).toBe(0);
  return { bytes: Number(r.stdout.trim()), sha256: r.stderr.trim().split(/\s+/)[0] ?? "" };
}
const received = (b: Buffer) => ({ bytes: b.length, sha256: sha256(b) });

// 16 rounds of ~280 KB of numbered lines on stdout, then as much on stderr: ~4.5 MB per stream in large interleaved
// blocks, each stream more than twice the client's 2 MiB window
const interleaved = (out: string, err: string) =>
  `for i in $(seq 1 16); do seq -f "${out}-$i-%07g" 1 20000; seq -f "${err}-$i-%07g" 1 20000 >&2; done`;

describe("ssh flow control through the gateway", () => {
  it("delivers several MiB of interleaved stdout and stderr exactly once to a slow reader", async () => {
    const writer = interleaved("out", "err");
    const expectOut = await onTarget(`${writer} 2>/dev/null`);
    const expectErr = await onTarget(`${writer} 2>&1 >/dev/null`);
    expect(expectOut.bytes).toBeGreaterThan(4 * 1024 * 1024);
    expect(expectErr.bytes).toBeGreaterThan(4 * 1024 * 1024);

    const r = await slowSsh(`${writer}; exit 3`);
    expect(received(r.stdout)).toEqual(expectOut);
    expect(received(r.stderr)).toEqual(expectErr);
    expect(r.code).toBe(3);
  }, 60_000);

  it("delivers several MiB of stdin exactly once to a target that reads it late, while output waits too", async () => {
    const input = Buffer.from(Array.from({ length: 400_000 }, (_, n) => `in-${String(n).padStart(7, "0")}\n`).join(""));
    expect(input.length).toBeGreaterThan(4 * 1024 * 1024);
    const writer = interleaved("rout", "rerr");
    const expectOut = await onTarget(`${writer} 2>/dev/null`);
    const expectErr = await onTarget(`${writer} 2>&1 >/dev/null`);
    // the target writes both streams before it reads its stdin: the gateway's writes to the target wait for the
    // target's window while its writes to the client wait for the client's
    const r = await slowSsh(`${writer}; sleep 1; sha256sum; exit 5`, input);
    // stdout ends with the target's sha256sum of what it read
    const digest = `${sha256(input)}  -\n`;
    expect(r.stdout.subarray(-digest.length).toString()).toBe(digest);
    expect(received(r.stdout.subarray(0, r.stdout.length - digest.length))).toEqual(expectOut);
    expect(received(r.stderr)).toEqual(expectErr);
    expect(r.code).toBe(5);
  }, 60_000);
});
