/**
 * A gateway with the SSH listener in front of the e2e project's real OpenSSH server, plus helpers that drive the
 * real `ssh` / `sftp` clients (token via SSH_ASKPASS, registered key, Gatehouse certificate).
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { loadSshCa, signSshUserCert } from "../../../src/core/identity/index.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { generateEd25519KeyPair } from "../../../src/protocols/ssh/host-key.js";
import { Gateway } from "../../../src/server/gateway.js";
import { gatewayYaml, sshConnectionYaml, testSshTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { sshClientArgs, TOKEN_LOGIN_ARGS, tokenLoginEnv } from "../../support/ssh-client.js";

export const exec = promisify(execFile);

export interface SshRun {
  stdout: string;
  stderr: string;
  code: number;
}

export interface SshHarness {
  gateway: Gateway;
  dir: string;
  port: number;
  token: string;
  /** A key registered under identity.ssh_keys (subject key-bot, group ci). */
  keyPath: string;
  /** A key with a Gatehouse certificate (subject cert-bot, group ci) at `${certKeyPath}-cert.pub`. */
  certKeyPath: string;
  logs: string[];
  /** Runs the real ssh client; auth "token" | "key" | "cert". */
  ssh(user: string, command: string | undefined, opts?: SshOptions): Promise<SshRun>;
  sshArgs(user: string, opts?: SshOptions): { args: string[]; env: NodeJS.ProcessEnv };
  stop(opts?: { keepDir?: boolean }): Promise<void>;
}

export interface SshOptions {
  auth?: "token" | "key" | "cert";
  token?: string;
  input?: string;
  extra?: string[];
  timeoutMs?: number;
}

export interface SshHarnessOptions {
  /** Extra YAML for the app-host connection (guardrails, masking), indented under the connection. */
  appHost?: string;
  /** Extra top-level YAML. */
  top?: string;
  /** More connections (blocks from sshConnectionYaml), given to group ci like the built-in ones. */
  connections?: string[];
}

export async function startSshHarness(options: SshHarnessOptions = {}): Promise<SshHarness> {
  const svc = services();
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-ssh-"));
  const bot = generateStaticToken();
  const keyPair = generateEd25519KeyPair();
  const keyPath = join(dir, "key_ed25519");
  writeFileSync(keyPath, keyPair.private, { mode: 0o600 });
  const certPair = generateEd25519KeyPair();
  const certKeyPath = join(dir, "cert_ed25519");
  writeFileSync(certKeyPath, certPair.private, { mode: 0o600 });
  // the CA lives in the data dir, as `gatehouse token ssh-cert --data DIR` would use it
  const cert = signSshUserCert(loadSshCa(dir), {
    publicKey: certPair.public,
    subject: "cert-bot",
    groups: ["ci"],
    kind: "bot",
    ttlMs: 3_600_000,
  });
  writeFileSync(`${certKeyPath}-cert.pub`, `${cert.line}\n`);
  const appHost = `guardrails:
  - deny: { commands: [shutdown, reboot, mkfs] }
  - deny: { patterns: ["rm -rf *", "curl * | sh"] }
masking: { detectors: [jwt, private_key, credit_card] }
${options.appHost ?? ""}`;
  // a key the server does not have: wrong-key-host pins it, so the gateway must refuse to connect there
  const wrongKey = readFileSync(svc.GH_TEST_SSH_CLIENT_PUBKEY, "utf8").trim();
  const yaml = gatewayYaml({
    data: dir,
    tokens: [{ name: "ci-bot", sha256: bot.sha256, groups: ["ci"] }],
    sshKeys: [{ name: "key-bot", key: keyPair.public, groups: ["ci"] }],
    connections: [
      sshConnectionYaml(testSshTarget(svc), { group: "ci", extra: appHost }),
      sshConnectionYaml(testSshTarget(svc, { auth: "password" }), { name: "pw-host", group: "ci" }),
      sshConnectionYaml(testSshTarget(svc, { hostKey: wrongKey }), { name: "wrong-key-host", group: "ci" }),
      ...(options.connections ?? []),
    ],
    top: options.top,
  });
  const config = parseConfig(yaml, { source: "test.yaml", baseDir: dir });
  const logs: string[] = [];
  const gateway = await Gateway.start(config, {
    apiListen: { host: "127.0.0.1", port: 0 },
    listen: { ssh: { host: "127.0.0.1", port: 0 } },
    log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`),
  });
  const address = gateway.address("ssh") ?? "";
  const port = Number(address.slice(address.lastIndexOf(":") + 1));

  const sshArgs = (user: string, o: SshOptions = {}) => {
    const auth = o.auth ?? "token";
    const common = [...sshClientArgs(port), "-o", "ConnectTimeout=10"];
    const byAuth =
      auth === "token"
        ? TOKEN_LOGIN_ARGS
        : auth === "key"
          ? ["-o", "PreferredAuthentications=publickey", "-o", "BatchMode=yes", "-i", keyPath]
          : [
              "-o",
              "PreferredAuthentications=publickey",
              "-o",
              "BatchMode=yes",
              "-i",
              certKeyPath,
              "-o",
              `CertificateFile=${certKeyPath}-cert.pub`,
            ];
    const env = tokenLoginEnv(dir, o.token ?? bot.token);
    return { args: [...common, ...byAuth, ...(o.extra ?? []), `${user}@127.0.0.1`], env };
  };

  return {
    gateway,
    dir,
    port,
    token: bot.token,
    keyPath,
    certKeyPath,
    logs,
    sshArgs,
    ssh: (user, command, o = {}) =>
      new Promise((resolve, reject) => {
        const { args, env } = sshArgs(user, o);
        const child = spawn("ssh", command === undefined ? args : [...args, command], { env });
        let stdout = "";
        let stderr = "";
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`ssh timed out; stderr: ${stderr}`));
        }, o.timeoutMs ?? 20_000);
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.stdin.end(o.input ?? "");
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ stdout, stderr, code: code ?? -1 });
        });
      }),
    stop: async (o = {}) => {
      await gateway.stop();
      if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
