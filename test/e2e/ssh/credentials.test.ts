/**
 * The gateway holds the SSH target's credentials: the target's private key and password must never reach the
 * client, a gateway log line, an audit record or a recording, whatever the session does (exec, shell, sftp) and
 * when the target refuses them. And a client's failed login is recorded without the credential it tried.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateEd25519KeyPair } from "../../../src/protocols/ssh/host-key.js";
import { sshConnectionYaml, testSshTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { startSshHarness, type SshHarness } from "./harness.js";

let h: SshHarness;
/** The password of bad-pw-host: the target refuses it, and the gateway must not repeat it anywhere. */
const wrongTargetPassword = `wrong-target-pw-${randomBytes(6).toString("hex")}`;
/** The private key of bad-key-host: not in the target's authorized_keys. */
const unknownTargetKey = generateEd25519KeyPair().private;

beforeAll(async () => {
  const svc = services();
  const { password: _pw, private_key: _key, ...server } = testSshTarget(svc);
  h = await startSshHarness({
    connections: [
      sshConnectionYaml({ ...server, password: wrongTargetPassword }, { name: "bad-pw-host", group: "ci" }),
      sshConnectionYaml({ ...server, private_key: unknownTargetKey }, { name: "bad-key-host", group: "ci" }),
    ],
  });
}, 30_000);
afterAll(async () => {
  await h?.stop();
});

/**
 * What identifies a private key wherever it might be copied: its PEM body and each of its own lines, the same key
 * as PKCS#8, and the raw 32-byte Ed25519 seed (as bytes, hex and base64).
 */
function keyNeedles(pem: string): Buffer[] {
  const body = (text: string) =>
    text
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("-----"))
      .map((l) => l.trim());
  const parsed = ssh2.utils.parseKey(pem);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error("cannot parse the key");
  const pkcs8 = key.getPrivatePEM();
  const seed = Buffer.from(body(pkcs8).join(""), "base64").subarray(-32);
  // lines every such key shares (format header, key type) identify nothing: leave them out
  const shared = new Set(body(generateEd25519KeyPair().private));
  const lines = [...body(pem), ...body(pkcs8)].filter((l) => l.length >= 16 && !shared.has(l));
  return [
    Buffer.from(body(pem).join("")),
    Buffer.from(body(pkcs8).join("")),
    ...lines.map((l) => Buffer.from(l)),
    seed,
    Buffer.from(seed.toString("hex")),
    Buffer.from(seed.toString("base64")),
  ];
}

/** Every file under `dir` (the gateway's data directory: evidence segments, index, WAL...). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** Where a secret could leak on the gateway's side: its logs, audit records, recording events and stored bytes. */
async function gatewaySide(): Promise<{ where: string; bytes: Buffer }[]> {
  await h.gateway.recorder.flush(); // recordings are written in batches: whatever is queued, now
  const out = [
    { where: "gateway log", bytes: Buffer.from(h.logs.join("\n")) },
    {
      where: "audit records",
      bytes: Buffer.from(JSON.stringify(await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 }))),
    },
  ];
  for (const s of await h.gateway.store.listSessions({})) {
    const events = await h.gateway.store.readRecordingEvents(s.session_id, { fromSeq: 1, limit: 100_000 });
    out.push({ where: `recording ${s.session_id}`, bytes: Buffer.from(JSON.stringify(events)) });
  }
  for (const f of filesUnder(h.dir)) out.push({ where: f, bytes: readFileSync(f) });
  return out;
}

/** Names every place (`label` + where) that contains one of the needles. */
function leaks(label: string, needles: Buffer[], places: { where: string; bytes: Buffer }[]): string[] {
  const found: string[] = [];
  for (const p of places) {
    for (const n of needles) if (p.bytes.includes(n)) found.push(`${label} in ${p.where}`);
  }
  return [...new Set(found)];
}

/** An ssh2 client session through the gateway that keeps every text the client was shown. */
async function ssh2Client(user: string, seen: string[]): Promise<ssh2.Client> {
  const client = new ssh2.Client();
  client.on("banner", (m: string) => seen.push(`banner: ${m}`));
  await new Promise<void>((resolve, reject) => {
    client.once("ready", resolve).once("error", (err) => {
      seen.push(`error: ${err.message}`);
      reject(err);
    });
    client.connect({ host: "127.0.0.1", port: h.port, username: user, password: h.token, hostVerifier: () => true });
  });
  client.on("error", (err) => seen.push(`error: ${err.message}`));
  return client;
}

/** Runs `command`; resolves with what it printed once the channel closes (a refusal included). */
function exec(client: ssh2.Client, command: string, seen: string[]): Promise<void> {
  return new Promise((resolve) => {
    client.exec(command, (err, ch) => {
      if (err) {
        seen.push(`exec refused: ${err.message}`);
        return resolve();
      }
      ch.on("data", (d: Buffer) => seen.push(d.toString()));
      ch.stderr.on("data", (d: Buffer) => seen.push(d.toString()));
      ch.on("exit", (...a: unknown[]) => seen.push(`exit ${JSON.stringify(a)}`));
      ch.on("close", () => resolve());
    });
  });
}

async function shell(client: ssh2.Client, seen: string[]): Promise<void> {
  const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
    client.shell({ term: "xterm", cols: 80, rows: 24 }, (err, s) => (err ? reject(err) : resolve(s))),
  );
  let out = "";
  ch.on("data", (d: Buffer) => {
    out += d.toString();
    seen.push(d.toString());
  });
  const closed = new Promise((r) => ch.once("close", r));
  // typed until the shell answers (it may not read what arrives before its prompt)
  for (let i = 0; i < 40 && !out.includes("shell-7"); i++) {
    ch.write("echo shell-$((3+4))\r");
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(out).toContain("shell-7");
  ch.end("exit\r");
  await closed;
}

async function sftp(client: ssh2.Client, seen: string[]): Promise<void> {
  const s = await new Promise<ssh2.SFTPWrapper>((resolve, reject) =>
    client.sftp((err, w) => (err ? reject(err) : resolve(w))),
  );
  const path = `/tmp/gatehouse-cred-${process.pid}-${randomBytes(4).toString("hex")}`;
  const call = <T>(f: (cb: (err: Error | null | undefined, v?: T) => void) => void) =>
    new Promise<T | undefined>((resolve) =>
      f((err, v) => {
        seen.push(err ? `sftp error: ${err.message}` : `sftp: ${JSON.stringify(v)}`);
        resolve(v);
      }),
    );
  await call((cb) => s.writeFile(path, "sftp through the gateway", (err) => cb(err)));
  const back = await call<Buffer>((cb) => s.readFile(path, cb));
  expect(back?.toString()).toBe("sftp through the gateway");
  await call((cb) =>
    s.readdir("/tmp", (err, list) =>
      cb(
        err,
        list?.map((e) => e.longname),
      ),
    ),
  );
  await call((cb) => s.unlink(path, (err) => cb(err)));
  s.end();
}

describe("the SSH target's credentials stay in the gateway", () => {
  it("no session shows the target's key or password to the client, a log, an audit record or a recording", async () => {
    const svc = services();
    const seen: string[] = [];
    // exec, shell and sftp on a key-held target (app-host) and a password-held one (pw-host)
    for (const user of ["app-host", "pw-host"]) {
      const c = await ssh2Client(user, seen);
      await exec(c, "echo exec-ok; id; env", seen);
      await shell(c, seen);
      await sftp(c, seen);
      c.end();
    }
    // the real ssh client too, with its own view of errors
    for (const user of ["app-host", "pw-host", "bad-pw-host", "bad-key-host"]) {
      const r = await h.ssh(user, "echo real-ssh-ok", { extra: ["-v"] });
      seen.push(r.stdout, r.stderr);
      if (!user.startsWith("bad-")) expect(r.stdout).toBe("real-ssh-ok\n");
      else expect(r.code).not.toBe(0);
    }
    // a failed target login, every channel kind
    for (const user of ["bad-pw-host", "bad-key-host"]) {
      const c = await ssh2Client(user, seen);
      await exec(c, "echo never", seen);
      await new Promise<void>((resolve) =>
        c.shell((err, ch) => {
          if (err) {
            seen.push(`shell refused: ${err.message}`);
            return resolve();
          }
          ch.on("data", (d: Buffer) => seen.push(d.toString()));
          ch.stderr.on("data", (d: Buffer) => seen.push(d.toString()));
          ch.on("close", () => resolve());
        }),
      );
      c.end();
    }
    const client = Buffer.from(seen.join("\n"));
    expect(client.toString()).toContain("exec-ok");
    // the refusals happened, and for the reason under test
    const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
    const refused = audit
      .filter((a) => a.type === "session.error")
      .map((a) => `${a.connection} ${JSON.stringify(a.data)}`);
    expect(refused.some((r) => r.startsWith("bad-pw-host") && r.includes("refused the gateway's credentials"))).toBe(
      true,
    );
    expect(refused.some((r) => r.startsWith("bad-key-host") && r.includes("refused the gateway's credentials"))).toBe(
      true,
    );
    const everywhere = [{ where: "what the client was shown", bytes: client }, ...(await gatewaySide())];
    const secrets = {
      "target password": [Buffer.from(svc.GH_TEST_SSH_PASSWORD)],
      "refused target password": [Buffer.from(wrongTargetPassword)],
      "target private key": keyNeedles(readFileSync(svc.GH_TEST_SSH_CLIENT_KEY, "utf8")),
      "refused target private key": keyNeedles(unknownTargetKey),
    };
    const found = Object.entries(secrets).flatMap(([label, needles]) => leaks(label, needles, everywhere));
    expect(found).toEqual([]);
  }, 120_000);
});

describe("failed SSH logins to the gateway", () => {
  it("a wrong token and an unknown key are recorded as auth.failed, without the credential tried", async () => {
    const triedToken = `gh_wrong_${randomBytes(12).toString("hex")}`;
    const wrong = await h.ssh("app-host", "true", { token: triedToken });
    expect(wrong.code).toBe(255);
    const stranger = generateEd25519KeyPair();
    // outside the gateway's data directory, which is searched for it below
    const strangerDir = mkdtempSync(join(tmpdir(), "gatehouse-stranger-"));
    const strangerPath = join(strangerDir, "id_ed25519");
    writeFileSync(strangerPath, stranger.private, { mode: 0o600 });
    try {
      const { args, env } = h.sshArgs("app-host", { auth: "key" });
      const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
        // the harness's key replaced by one no identity has
        const child = spawn("ssh", [...args.map((a) => (a === h.keyPath ? strangerPath : a)), "true"], { env });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.stdin.end();
        child.on("close", (code: number | null) => resolve({ code: code ?? -1, stderr }));
      });
      expect(r.code, r.stderr).toBe(255);
    } finally {
      rmSync(strangerDir, { recursive: true, force: true });
    }
    const failed = (await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 })).filter(
      (a) => a.type === "auth.failed",
    );
    const data = failed.map((a) => a.data as { protocol?: string; code?: string; message?: string });
    expect(data).toContainEqual(
      expect.objectContaining({ protocol: "ssh", message: expect.stringMatching(/^password:/) }),
    );
    expect(data).toContainEqual(expect.objectContaining({ protocol: "ssh", code: "unknown_key" }));
    expect(failed.every((a) => a.connection === "app-host")).toBe(true);
    const found = leaks(
      "tried credential",
      [Buffer.from(triedToken), ...keyNeedles(stranger.private)],
      await gatewaySide(),
    );
    expect(found).toEqual([]);
  }, 60_000);
});
