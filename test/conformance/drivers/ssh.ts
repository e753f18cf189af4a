/** The conformance driver for SSH: OpenSSH's own client, and files on the target as its witness. */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sshAdapter } from "../../../src/protocols/ssh/adapter.js";
import { sshConnectionYaml, testSshTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { sshClientArgs, TOKEN_LOGIN_ARGS, tokenLoginEnv } from "../../support/ssh-client.js";
import type { ClientOutcome, ConformanceDriver, DriverSession } from "../driver.js";

const BAD_PASSWORD = `gh-wrong-${randomUUID()}`;
const work = mkdtempSync(join(tmpdir(), "gatehouse-conformance-ssh-"));

function ssh(args: string[], token: string): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const child = spawn("ssh", args, { env: tokenLoginEnv(work, token), stdio: ["ignore", "pipe", "pipe"] });
    let shown = "";
    child.stdout.on("data", (d: Buffer) => (shown += d.toString()));
    child.stderr.on("data", (d: Buffer) => (shown += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? { ok: true, shown } : { ok: false, answer: code, shown });
    });
  });
}

const login = (port: number) => [...sshClientArgs(port), ...TOKEN_LOGIN_ARGS, "-o", "ConnectTimeout=10"];

export const sshDriver: ConformanceDriver = {
  protocol: "ssh",
  adapter: sshAdapter,
  connection: "conf-host",
  connectionsYaml: () => {
    const svc = services();
    return [
      sshConnectionYaml(testSshTarget(svc), {
        name: "conf-host",
        group: "ci",
        extra: "guardrails:\n  - deny: { commands: [touch] }",
      }),
      sshConnectionYaml(
        { ...testSshTarget(svc, { auth: "password" }), password: BAD_PASSWORD },
        { name: "conf-host-badcred", group: "ci" },
      ),
    ].join("\n");
  },
  // the login succeeds (the token is valid); the channel is refused with the reason on stderr and exit status 1
  unreachable: 1,
  // the target shares this machine's /tmp: what a command made there is what the target did
  allowed: (m) => `mkdir /tmp/${m}`,
  denied: (m) => `touch /tmp/${m}`,
  targetSaw: (m) => Promise.resolve(existsSync(`/tmp/${m}`)),
  once: (port, connection, token, request) => ssh([...login(port), `${connection}@127.0.0.1`, request], token),
  async open(port, connection, token): Promise<DriverSession> {
    const control = join(work, `ctl-${randomUUID().slice(0, 8)}`);
    const master = spawn(
      "ssh",
      [...login(port), "-o", "ControlMaster=yes", "-o", `ControlPath=${control}`, "-N", `${connection}@127.0.0.1`],
      {
        env: tokenLoginEnv(work, token),
        stdio: "ignore",
      },
    );
    const over = (...args: string[]) => ssh([...login(port), "-o", `ControlPath=${control}`, ...args], token);
    for (let i = 0; ; i++) {
      if ((await over("-O", "check", `${connection}@127.0.0.1`)).ok) break;
      if (i > 100 || master.exitCode !== null) throw new Error("the ssh master connection did not come up");
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      run: (request) => over(`${connection}@127.0.0.1`, request),
      close: async () => {
        await over("-O", "exit", `${connection}@127.0.0.1`);
        master.kill("SIGTERM");
      },
    };
  },
  secrets: () => {
    const svc = services();
    const key = readFileSync(svc.GH_TEST_SSH_CLIENT_KEY, "utf8");
    // every line of the key's body: any of them shown would leak part of it
    const body = key.split("\n").filter((l) => l.length >= 20 && !l.startsWith("-----"));
    return [svc.GH_TEST_SSH_PASSWORD, BAD_PASSWORD, ...body];
  },
};
