/**
 * An isolated Linux network namespace for end-to-end tests that run the gateway as a child process inside it: there
 * it cannot reach the real target servers on the host's loopback (127.0.0.1 inside is the namespace's own loopback,
 * and there is no default route), so only a process on the host (the agent) can reach them. Host and namespace
 * share one veth pair with a /30 from 10.213.0.0/16: clients and the agent on the host dial `nsAddress`, a process
 * inside can reach the host only at `hostAddress`.
 *
 *   const ns = await createNamespace({ label: "agent" });
 *   const gateway = ns.spawn(process.execPath, [cli, "serve", ...]);
 *   ...
 *   await ns.destroy();
 *
 * Needs root and iproute2; without them createNamespace throws (a safety test must fail, not skip). No vitest imports.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";

export const NETNS_REQUIREMENTS =
  "network-namespace tests need root and iproute2 (apt-get install -y --no-install-recommends iproute2)";

export interface Namespace {
  /** The namespace's name (`ip netns list`): gh-[label-]<pid>-<n>, the pid being the creating process's. */
  readonly name: string;
  /** The veth end in the root namespace, e.g. 10.213.7.1: what a process inside dials to reach the host. */
  readonly hostAddress: string;
  /** The veth end inside, e.g. 10.213.7.2: what the host dials to reach a listener inside. */
  readonly nsAddress: string;
  /** Name of the host's veth end (ghv<n>). */
  readonly hostLink: string;
  /**
   * Runs `command` inside the namespace through `ip netns exec`. That execs the command, so the returned child's pid
   * is the command's own and child.kill() signals it, not a wrapper.
   */
  spawn(command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Kills whatever still runs inside, deletes the namespace and waits until its veth pair is gone. Idempotent. */
  destroy(): Promise<void>;
}

const PREFIX = "gh-";
// Linux keeps a namespace alive while a process is in it: the name goes at `ip netns del`, the veth pair only when
// the last process has left. 10.213.0.0/16 holds 16384 /30 subnets; subnet n is 10.213.0.0 + 4n, its host link ghv<n>.
const SUBNETS = 16_384;
const GONE_WITHIN_MS = 5_000;

const run = promisify(execFile);
let counter = 0;

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run("ip", args, { encoding: "utf8" })).stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error(`${NETNS_REQUIREMENTS}: \`ip\` is not on PATH`, { cause: err });
    throw new Error(`ip ${args.join(" ")}: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

async function namespaceNames(): Promise<string[]> {
  // lines are "name" or "name (id: 3)"
  return (await ip("netns", "list"))
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter(Boolean);
}

/** Kills everything inside `name` (until nothing is left: a dying process may have forked), then deletes it. */
async function removeNamespace(name: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = await ip("netns", "pids", name).then(
      (out) => out.split("\n").filter(Boolean).map(Number),
      () => [], // no such namespace (any more)
    );
    if (pids.length === 0) break;
    for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
    await sleep(20);
  }
  await ip("netns", "del", name).catch((err: Error) => {
    if (!/No such file/.test(err.message)) throw err;
  });
}

/** Namespaces of earlier runs whose creating process died before destroy() (a crashed or killed test worker). */
async function removeLeftovers(): Promise<void> {
  for (const name of await namespaceNames()) {
    const pid = Number(/^gh-(?:.+-)?(\d+)-\d+$/.exec(name)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    // a parallel test file may be removing the same leftover
    await removeNamespace(name).catch(() => undefined);
  }
}

function ifindex(link: string): number | undefined {
  try {
    return Number(readFileSync(`/sys/class/net/${link}/ifindex`, "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * Creates the veth pair for `ns` on a free /30 and returns its subnet number. Free means no address of the subnet
 * is on any interface (a foreign user of 10.213/16), and the link ghv<n> could be created: `ip link add` is atomic,
 * so the link name is the lock that keeps parallel test files, and pairs of namespaces still being freed, apart.
 */
async function addVethPair(ns: string): Promise<number> {
  const used = new Set<number>();
  for (const m of (await ip("-o", "-4", "addr")).matchAll(/inet 10\.213\.(\d+)\.(\d+)/g))
    used.add((Number(m[1]) * 256 + Number(m[2])) >> 2);
  const start = Math.floor(Math.random() * SUBNETS); // parallel callers start apart
  for (let i = 0; i < SUBNETS; i++) {
    const n = (start + i) % SUBNETS;
    if (used.has(n)) continue;
    try {
      await ip("link", "add", `ghv${n}`, "type", "veth", "peer", "name", "veth0", "netns", ns);
      return n;
    } catch (err) {
      if (!/File exists/.test((err as Error).message)) throw err;
    }
  }
  throw new Error("no free /30 left in 10.213.0.0/16 (leftover ghv* links? `ip -o link | grep ghv`)");
}

function subnetAddress(n: number, host: 1 | 2): string {
  const a = n * 4 + host;
  return `10.213.${a >> 8}.${a & 255}`;
}

async function checkRequirements(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error(`${NETNS_REQUIREMENTS}: not running as root`);
  await ip("-V");
}

/** A new namespace, named gh-<label>-<pid>-<n>; see the module comment. */
export async function createNamespace(opts: { label?: string } = {}): Promise<Namespace> {
  await checkRequirements();
  await removeLeftovers();
  const label = (opts.label ?? "").toLowerCase().replace(/[^a-z0-9]/g, "");
  let name: string;
  for (;;) {
    name = `${PREFIX}${label ? `${label}-` : ""}${process.pid}-${counter++}`;
    try {
      await ip("netns", "add", name);
      break;
    } catch (err) {
      // this module loaded afresh in a reused worker process: its counter started over
      if (!/File exists/.test((err as Error).message)) throw err;
    }
  }
  const created = name;
  try {
    const n = await addVethPair(created);
    const hostLink = `ghv${n}`;
    const hostAddress = subnetAddress(n, 1);
    const nsAddress = subnetAddress(n, 2);
    const index = ifindex(hostLink);
    await ip("addr", "add", `${hostAddress}/30`, "dev", hostLink);
    await ip("link", "set", hostLink, "up");
    await ip("-n", created, "addr", "add", `${nsAddress}/30`, "dev", "veth0");
    await ip("-n", created, "link", "set", "veth0", "up");
    await ip("-n", created, "link", "set", "lo", "up");
    return {
      name: created,
      hostAddress,
      nsAddress,
      hostLink,
      spawn: (command, args = [], options = {}) => spawn("ip", ["netns", "exec", created, command, ...args], options),
      async destroy() {
        await removeNamespace(created);
        // compared by ifindex: once ours is gone, another namespace may already have taken the name ghv<n>
        const until = Date.now() + GONE_WITHIN_MS;
        while (index !== undefined && ifindex(hostLink) === index) {
          if (Date.now() > until) throw new Error(`${hostLink} of deleted namespace ${created} still exists`);
          await sleep(20);
        }
      },
    };
  } catch (err) {
    await removeNamespace(created).catch(() => undefined);
    throw err;
  }
}
