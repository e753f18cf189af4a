/**
 * An SSH forwarding request while the evidence store is failing (issue 14, defect 1). The refused request's audit
 * record cannot be written; that must be logged, not become an unhandled rejection that ends the gateway process
 * and every session of every protocol with it. The gateway runs as its own process on a tmpfs that really runs
 * out of space (ENOSPC from the kernel).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sshClientArgs, TOKEN_LOGIN_ARGS, tokenLoginEnv } from "../../support/ssh-client.js";
import { readAudit, runCli, startGatewayProcess, writeConfig, type GatewayProcess } from "./process.js";
import { fillDisk, mountTmpfs, unmountTmpfs } from "./tmpfs.js";

const dir = mkdtempSync(join(tmpdir(), "gatehouse-ssh-outage-"));
const data = join(dir, "data");
const filler = join(data, "filler");
const control = join(dir, "ctl");

let gw: GatewayProcess | undefined;
let mounted = false;
let token = "";
let sshPort = 0;

beforeAll(async () => {
  mountTmpfs(data);
  mounted = true;
  const written = await writeConfig(dir, data, "", { ssh: true });
  token = written.token;
  sshPort = written.sshPort ?? 0;
  gw = await startGatewayProcess(written.path);
}, 60_000);

afterAll(async () => {
  spawnSync("ssh", [...sshBase(), "-O", "exit", "app-host@127.0.0.1"], { env: tokenLoginEnv(dir, token) });
  if (gw && gw.child.exitCode === null) {
    process.kill(gw.pid, "SIGKILL");
    await gw.exited;
  }
  if (mounted) unmountTmpfs(data);
  rmSync(dir, { recursive: true, force: true });
});

/** ssh options shared by the master connection and the commands multiplexed over it. */
function sshBase(): string[] {
  return [...sshClientArgs(sshPort), ...TOKEN_LOGIN_ARGS, "-o", `ControlPath=${control}`];
}

/**
 * Runs ssh over the master connection: `-O` control commands (a forward is a global request on the same SSH
 * connection), or a command in a new channel.
 */
function overMaster(
  options: string[],
  command: string[] = [],
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("ssh", [...sshBase(), ...options, "app-host@127.0.0.1", ...command], {
    env: tokenLoginEnv(dir, token),
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function health(): Promise<number> {
  return (await fetch(`${gw?.api}/healthz`)).status;
}

describe("ssh forwarding request while evidence cannot be written", () => {
  it("is refused and logged; the gateway keeps running and its other sessions resume once space is back", async () => {
    // one SSH connection (the master) and one PostgreSQL session, both open before the disk fills
    const master = spawn("ssh", [...sshBase(), "-o", "ControlMaster=yes", "-N", "app-host@127.0.0.1"], {
      env: tokenLoginEnv(dir, token),
      stdio: "ignore",
    });
    for (let i = 0; i < 100 && overMaster(["-O", "check"]).code !== 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(overMaster(["-O", "check"]).code, "ssh master connection").toBe(0);
    expect(overMaster([], ["echo", "before"]).stdout).toBe("before\n");
    const db = new pg.Client({
      host: "127.0.0.1",
      port: gw?.port,
      database: "app-db",
      user: "ci-bot",
      password: token,
    });
    db.on("error", () => undefined);
    await db.connect();
    expect((await db.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);

    // with space, a remote-forward request over the master is refused and recorded
    const first = overMaster(["-O", "forward", "-R", "127.0.0.1:0:127.0.0.1:22"]);
    expect(first.code).not.toBe(0);

    fillDisk(filler);
    // each further request is refused; its record needs space the disk no longer has, sooner or later
    let attempts = 0;
    while ((await health()) === 200 && attempts < 200) {
      attempts++;
      expect(overMaster(["-O", "forward", "-R", "127.0.0.1:0:127.0.0.1:22"]).code).not.toBe(0);
    }
    expect(await health(), `evidence never failed in ${attempts} forwarding requests`).toBe(503);
    for (let i = 0; i < 3; i++)
      expect(overMaster(["-O", "forward", "-R", "127.0.0.1:0:127.0.0.1:22"]).code).not.toBe(0);
    // the gateway's word that a record was lost comes after the failed write: by then, an unhandled rejection
    // would have ended the process
    for (let i = 0; i < 100 && !/could not be recorded/.test(gw?.output() ?? "") && gw?.child.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(gw?.output()).toMatch(/a refused forwarding request could not be recorded/);
    // one more request, answered after that failure: the process still serves
    expect(overMaster(["-O", "forward", "-R", "127.0.0.1:0:127.0.0.1:22"]).code).not.toBe(0);
    expect(gw?.child.exitCode, `the gateway exited:\n${gw?.output()}`).toBeNull();
    expect(await health()).toBe(503);

    // space comes back: the same SSH connection and the same PostgreSQL session work again
    rmSync(filler);
    let resumed = "";
    for (let i = 0; i < 50 && resumed !== "after\n"; i++) {
      resumed = overMaster([], ["echo", "after"]).stdout;
      if (resumed !== "after\n") await new Promise((r) => setTimeout(r, 100));
    }
    expect(resumed).toBe("after\n");
    expect((await db.query("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
    await db.end();
    expect(overMaster(["-O", "exit"]).code).toBe(0);
    master.kill("SIGTERM");

    if (gw) {
      process.kill(gw.pid, "SIGTERM");
      expect(await gw.exited).toBe(0);
    }
    const refused = (await readAudit(data)).filter((r) => r.type === "ssh.forward.refused");
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused[0]?.data).toMatchObject({ kind: "tcpip-forward", listen: "127.0.0.1:0" });
    const verify = await runCli("audit", "verify", "--data", data);
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
    expect(existsSync(control)).toBe(false);
  }, 120_000);
});
