import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ssh2 from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSshHarness, type SshHarness } from "./harness.js";

const cli = fileURLToPath(new URL("../../identity/run-cli.ts", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let h: SshHarness;
let stopped = false;
beforeAll(async () => {
  h = await startSshHarness();
}, 30_000);
afterAll(async () => {
  if (!stopped) await h?.stop();
  else rmSync(h.dir, { recursive: true, force: true });
});

const denials = (out: string) => out.split("gatehouse: denied").length - 1;

/** Waits until `check(read())` holds. */
async function waitUntil(
  read: () => string,
  check: (out: string) => boolean,
  what: string,
  ms = 10_000,
): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check(read())) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}; got: ${JSON.stringify(read().slice(-2000))}`);
}

/** Runs a child without blocking the event loop (the gateway runs in this process). */
function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string },
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(opts.input ?? "");
    child.on("close", (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

/** Waits until `read()` contains `text`. */
async function waitFor(read: () => string, text: string | RegExp, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const out = read();
    if (typeof text === "string" ? out.includes(text) : text.test(out)) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${String(text)}; got: ${JSON.stringify(read().slice(-2000))}`);
}

/** Types a harmless probe every second until the remote shell has run one (then it reads what is typed). */
async function shellAnswers(type: (s: string) => void, read: () => string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    type("echo ready-$((2+3))\r");
    const by = Date.now() + 1000;
    while (Date.now() < by) {
      if (read().includes("ready-5")) return;
      await sleep(50);
    }
  }
  throw new Error(`the remote shell never answered; got: ${JSON.stringify(read().slice(-2000))}`);
}

/** An interactive PTY shell driven by ssh2's client (precise control of keystrokes and window size). */
async function ptyShell(): Promise<{
  write(s: string): void;
  output(): string;
  resize(c: number, r: number): void;
  end(): Promise<void>;
}> {
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once("ready", resolve).once("error", reject);
    client.connect({
      host: "127.0.0.1",
      port: h.port,
      username: "app-host",
      password: h.token,
      hostVerifier: () => true,
    });
  });
  const stream = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
    client.shell({ term: "xterm", cols: 100, rows: 30 }, (err, s) => (err ? reject(err) : resolve(s))),
  );
  let out = "";
  stream.on("data", (d: Buffer) => (out += d.toString()));
  return {
    write: (s) => stream.write(s),
    output: () => out,
    resize: (c, r) => stream.setWindow(r, c, 0, 0),
    end: () =>
      new Promise<void>((resolve) => {
        client.once("close", () => resolve());
        stream.end("exit\r");
        setTimeout(() => client.end(), 2000);
      }),
  };
}

describe("interactive ssh through the gateway", () => {
  it("the real ssh client in a PTY: a typed rm -rf line is stopped before its Enter, other lines run", async () => {
    const marker = `/tmp/gatehouse-pty-marker-${process.pid}`;
    rmSync(marker, { recursive: true, force: true });
    const { args, env } = h.sshArgs("app-host", { auth: "key" });
    const quoted = ["ssh", "-tt", ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    // `script` gives ssh a real terminal; we type into script's stdin
    const child = spawn("script", ["-qfec", quoted, "/dev/null"], { env });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    try {
      // the remote shell answers before anything that matters is typed (a fixed sleep was too short under load)
      await shellAnswers(
        (s) => child.stdin.write(s),
        () => out,
      );
      child.stdin.write(`mkdir -p ${marker}; echo made-$((6*7))\r`);
      await waitFor(() => out, "made-42", 20_000);
      child.stdin.write(`rm -rf ${marker}\r`);
      await waitFor(() => out, /gatehouse: denied: .*rm -rf/, 20_000);
      child.stdin.write(`echo still-$((1+1))\r`);
      await waitFor(() => out, "still-2", 20_000);
      expect(existsSync(marker)).toBe(true);
      child.stdin.write("exit\r");
      await new Promise((r) => child.once("close", r));
    } finally {
      child.kill();
      rmSync(marker, { recursive: true, force: true });
    }
  }, 90_000);

  it("ssh2 client PTY: evasions, backspace editing, bracketed paste and resize; output masked", async () => {
    const marker = `/tmp/gatehouse-pty2-${process.pid}`;
    writeFileSync(marker, "x");
    const sh = await ptyShell();
    try {
      // the shell reads what is typed once it answers (a fixed sleep before typing was a guess)
      await shellAnswers(sh.write, sh.output);
      sh.resize(120, 40);
      // typed with a mistake fixed by backspace: the gateway follows the edit
      sh.write(`rm -rf ${marker}x\x7f\r`);
      await waitUntil(sh.output, (o) => denials(o) === 1, "first denial");
      sh.write(`sudo bash -c 'r''m -rf ${marker}'\r`);
      await waitUntil(sh.output, (o) => denials(o) === 2, "second denial");
      // a multi-line paste is one submission: its second line is caught
      sh.write(`\x1b[200~echo pasted\nrm -rf ${marker}\x1b[201~\r`);
      await waitUntil(sh.output, (o) => denials(o) === 3, "third denial");
      sh.write("printf 'card 4111 1111 1111 1111 end\\n'\r");
      await waitFor(sh.output, "end");
      expect(sh.output()).not.toContain("4111 1111 1111 1111 end");
      sh.write("stty size\r");
      await waitFor(sh.output, "40 120");
      expect(existsSync(marker)).toBe(true);
    } finally {
      await sh.end();
      rmSync(marker, { force: true });
    }
  }, 30_000);

  it("sftp put and get work, and each file operation is a request with its size recorded", async () => {
    const local = join(h.dir, "upload.txt");
    const remote = `/tmp/gatehouse-sftp-${process.pid}.txt`;
    const back = join(h.dir, "download.txt");
    writeFileSync(local, "sftp payload ".repeat(1000));
    const { args, env } = h.sshArgs("app-host", { auth: "key" });
    // sftp takes ssh's options, but -P for the port and the destination last
    const sftpArgs = args.map((a) => (a === "-p" ? "-P" : a));
    const r = await run("sftp", ["-b", "-", ...sftpArgs], {
      env,
      input: `put ${local} ${remote}\nget ${remote} ${back}\nrm ${remote}\n`,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(back, "utf8")).toBe(readFileSync(local, "utf8"));
    const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 10_000 });
    const texts = audit.filter((a) => a.type === "request").map((a) => String((a.data as { text?: string }).text));
    expect(texts).toContain("sftp");
    expect(texts).toContain(`sftp put ${remote}`);
    expect(texts).toContain(`sftp get ${remote}`);
    expect(texts).toContain(`sftp remove ${remote}`);
    const transfers = audit.filter((a) => a.type === "sftp.transfer").map((a) => a.data);
    expect(transfers).toContainEqual({ op: "put", path: remote, bytes_read: 0, bytes_written: 13_000 });
    expect(transfers).toContainEqual({ op: "get", path: remote, bytes_read: 13_000, bytes_written: 0 });
  }, 30_000);

  it("the audit log verifies and a PTY session replays as asciicast v2", async () => {
    // its own session, so that this test does not depend on the ones before it having run
    const marker = `/tmp/gatehouse-replay-${process.pid}`;
    const sh = await ptyShell();
    try {
      await shellAnswers(sh.write, sh.output);
      sh.resize(120, 40);
      sh.write("stty size\r");
      await waitFor(sh.output, "40 120");
      sh.write(`rm -rf ${marker}\r`);
      await waitUntil(sh.output, (o) => denials(o) === 1, "the denial");
      sh.write("printf 'card 4111 1111 1111 1111 end\\n'\r");
      await waitFor(sh.output, "end");
    } finally {
      await sh.end();
    }
    const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 10_000 });
    const blocked = audit.filter((a) => a.type === "request.blocked" && JSON.stringify(a.data).includes(marker));
    expect(blocked).toHaveLength(1);
    const sessionId = String(blocked[0]?.session_id);
    await h.stop({ keepDir: true });
    stopped = true;
    const verify = spawnSync(process.execPath, ["--import", "tsx", cli, "audit", "verify", "--data", h.dir], {
      encoding: "utf8",
    });
    expect(verify.status, verify.stdout + verify.stderr).toBe(0);
    const replay = spawnSync(
      process.execPath,
      ["--import", "tsx", cli, "replay", sessionId, "--data", h.dir, "--format", "asciicast"],
      { encoding: "utf8" },
    );
    expect(replay.status, replay.stderr).toBe(0);
    const [head, ...events] = replay.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as unknown);
    expect(head).toMatchObject({ version: 2, width: 100, height: 30 });
    const output = events
      .filter((e) => Array.isArray(e) && e[1] === "o")
      .map((e) => (e as string[])[2])
      .join("");
    expect(output).toContain("ready-5");
    expect(output).not.toContain("4111 1111 1111 1111");
    expect(events.some((e) => Array.isArray(e) && e[1] === "r" && e[2] === "120x40")).toBe(true);
    expect(events.some((e) => Array.isArray(e) && e[1] === "i")).toBe(true);
  }, 60_000);
});
