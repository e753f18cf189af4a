/**
 * Shared by the benchmarks: the test servers (test/services.sh, as the e2e tests start them), peer processes (the
 * bare pass-through proxies, native proxies), Debian packages they need, and the gateway as its own process
 * (`node bin/gatehouse.js serve`, so `npm run build` first). Every child started here is ended on stop() and on
 * SIGINT/SIGTERM.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseServicesEnv, type ServicesEnv } from "../test/support/services-env.js";

const script = join(import.meta.dirname, "..", "test", "services.sh");

export function servicesUp(): { env: ServicesEnv; down: () => void } {
  const run = (...args: string[]) =>
    execFileSync("bash", [script, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const holder = String(process.pid);
  run("up", "--holder", holder);
  const env = parseServicesEnv(run("env"));
  return {
    env,
    down: () => (process.env.GH_TEST_KEEP_SERVICES === "1" ? undefined : void run("down", "--holder", holder)),
  };
}

export interface ProxyChild {
  port: number;
  /** The proxy's own process, for its CPU time (bench/_cpu.ts). */
  pid: number;
  stop(): void;
}

/** Every child process started through this module that is still meant to run. */
export const proxyChildren = new Set<ChildProcess>();
let killOnSignal = false;

/** On SIGINT/SIGTERM, ends every child the benchmark started (their stop() is not reached then). */
export function killChildrenOnSignal(): void {
  if (!killOnSignal) {
    killOnSignal = true;
    for (const [signal, code] of [
      ["SIGINT", 130],
      ["SIGTERM", 143],
    ] as const) {
      process.once(signal, () => {
        for (const c of proxyChildren) c.kill("SIGTERM");
        process.exit(code);
      });
    }
  }
}

/**
 * A bare pass-through proxy (`program`, by default the TCP one, bench/_passthrough-proxy.ts; the HTTP benchmark
 * passes bench/_http-passthrough-proxy.ts) in a child process, with its own event loop like a separate proxy: the
 * ceiling row of the benchmarks. The program prints {"port": N} once listening. Killed on stop() and on
 * SIGINT/SIGTERM.
 */
export async function startProxyChild(
  host: string,
  port: string,
  program = "_passthrough-proxy.ts",
): Promise<ProxyChild> {
  killChildrenOnSignal();
  const child = spawn(process.execPath, ["--import", "tsx", join("bench", program), host, port], {
    cwd: join(import.meta.dirname, ".."),
    stdio: ["pipe", "pipe", "inherit"],
  });
  proxyChildren.add(child);
  const stop = () => {
    proxyChildren.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  const lines = createInterface({ input: child.stdout! });
  try {
    const first = await Promise.race([
      once(lines, "line").then(([line]) => String(line)),
      once(child, "exit").then(([code, signal]) => {
        throw new Error(`pass-through proxy exited before listening (${code ?? signal})`);
      }),
    ]);
    const proxyPort = (JSON.parse(first) as { port?: unknown }).port;
    if (typeof proxyPort !== "number" || proxyPort <= 0) throw new Error(`pass-through proxy said: ${first}`);
    // spawned without a shell: child.pid is the node process that relays
    return { port: proxyPort, pid: child.pid!, stop };
  } catch (err) {
    stop();
    throw err;
  } finally {
    lines.close();
  }
}

export function onPath(program: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `child` accepts connections on 127.0.0.1:`port` (polled for 5 s); stop() also runs `cleanup`. */
export async function listeningChild(
  child: ChildProcess,
  port: number,
  what: string,
  cleanup: () => void,
): Promise<ProxyChild> {
  proxyChildren.add(child);
  const stop = () => {
    proxyChildren.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    cleanup();
  };
  for (let attempt = 0; ; attempt++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return { port, pid: child.pid!, stop };
    if (attempt === 50 || child.exitCode !== null || child.signalCode !== null) {
      stop();
      throw new Error(`${what} did not start listening on 127.0.0.1:${port}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const isRoot = process.getuid?.() === 0;

/**
 * Makes sure a Debian package's program is there, the way test/services.sh does for the test servers: as root,
 * `apt-get install -y --no-install-recommends PACKAGE` (with apt-get update only when the first try cannot find it;
 * the package's own service is not started, /usr/sbin/policy-rc.d says no while it installs); otherwise prints the
 * command to run and returns false, and the caller skips its row.
 */
export function ensureDebianPackage(pkg: string, program: string): boolean {
  const found = () => onPath(program) || existsSync(join("/usr/sbin", program));
  if (found()) return true;
  const command = `apt-get install -y --no-install-recommends ${pkg}`;
  if (!isRoot) {
    process.stderr.write(`bench: ${pkg} is not installed; its row is skipped. To get it, run:\n  sudo ${command}\n`);
    return false;
  }
  process.stderr.write(`bench: installing ${pkg} (${command})\n`);
  const policy = "/usr/sbin/policy-rc.d";
  const madePolicy = !existsSync(policy);
  if (madePolicy) {
    writeFileSync(policy, "#!/bin/sh\nexit 101\n");
    chmodSync(policy, 0o755);
  }
  const apt = (...args: string[]) =>
    execFileSync("apt-get", args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  try {
    try {
      apt("install", "-y", "-qq", "--no-install-recommends", pkg);
    } catch {
      apt("update", "-qq");
      apt("install", "-y", "-qq", "--no-install-recommends", pkg);
    }
  } catch (err) {
    process.stderr.write(`bench: ${command} failed, ${pkg} row skipped: ${(err as Error).message.split("\n")[0]}\n`);
  } finally {
    if (madePolicy) rmSync(policy, { force: true });
  }
  return found();
}

/** The gateway as its own process (`node bin/gatehouse.js serve --config FILE`), as it runs in production. */
export interface GatewayProcess {
  pid: number;
  /** What `serve` printed once up: the admin API line and one line per listener with its state and address. */
  banner: string;
  /** SIGTERM, then resolves once the process has exited (it closes its sessions and seals its evidence first). */
  stop(): Promise<void>;
}

/**
 * Starts `node bin/gatehouse.js serve --config CONFIG` (the compiled CLI: `npm run build` first) and resolves once
 * it has printed its banner (it does so after every listener is up); rejects with its stderr when it exits first,
 * e.g. because it refuses the config.
 */
export async function startGatewayProcess(config: string): Promise<GatewayProcess> {
  const { child, output, exited, stop } = spawnCli(["serve", "--config", config], ["ignore", "pipe", "pipe"]);
  try {
    await Promise.race([
      new Promise<void>((resolve) => {
        const check = () => (output.stdout.includes("admin API on") ? resolve() : undefined);
        child.stdout?.on("data", check);
        check();
      }),
      exited.then(([code, signal]) => {
        const why = output.stderr.trim().split("\n").slice(-3).join(" / ") || "no output";
        throw new Error(`gatehouse serve exited (${code ?? signal}) before it was up: ${why}`);
      }),
    ]);
    // the banner is one write; give a split pipe read a moment to deliver the rest
    await new Promise((r) => setTimeout(r, 50));
    return { pid: child.pid!, banner: output.stdout.trim(), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A compiled-CLI child (`node [nodeArgs] bin/gatehouse.js ARGS`), killed with the bench, its output collected. */
export function spawnCli(
  args: string[],
  stdio: ["ignore", "pipe" | "ignore", "pipe"],
  nodeArgs: string[] = [],
): {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  exited: Promise<unknown[]>;
  stop(): Promise<void>;
} {
  killChildrenOnSignal();
  const root = join(import.meta.dirname, "..");
  const child = spawn(process.execPath, [...nodeArgs, join(root, "bin", "gatehouse.js"), ...args], {
    cwd: root,
    stdio,
  });
  proxyChildren.add(child);
  const output = { stdout: "", stderr: "" };
  child.stdout?.on("data", (d: Buffer) => (output.stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output.stderr += d.toString()));
  const exited = once(child, "exit");
  const stop = async () => {
    proxyChildren.delete(child);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  return { child, output, exited, stop };
}
