/**
 * test/support/netns.ts does what the agent tests rely on: a process inside the namespace cannot reach the host's
 * loopback (where the real target servers listen) but can reach the host at hostAddress, the host reaches a listener
 * inside at nsAddress, a spawned child is the command itself, and destroy leaves nothing behind.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePorts } from "../../support/gateway-config.js";
import { createNamespace, NETNS_REQUIREMENTS, type Namespace } from "../../support/netns.js";

const run = promisify(execFile);

let ns: Namespace;
const servers: Server[] = [];

beforeAll(async () => {
  ns = await createNamespace({ label: "netns" });
});

afterAll(async () => {
  await ns?.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

/** A TCP server on the host that counts accepted connections and remembers their peers. */
async function hostServer(host: string, port: number): Promise<{ peers: string[] }> {
  const peers: string[] = [];
  const server = createServer((s: Socket) => {
    peers.push(s.remoteAddress ?? "");
    s.end();
  });
  servers.push(server);
  server.listen(port, host);
  await once(server, "listening");
  return { peers };
}

function output(child: ChildProcess): Promise<{ stdout: string; code: number | null; signal: string | null }> {
  let stdout = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ stdout, code, signal }));
  });
}

/** Dials host:port from inside the namespace; "connected" or the error code. */
async function dialFromInside(host: string, port: number): Promise<string> {
  const script = `
    const s = require("node:net").connect(${port}, ${JSON.stringify(host)});
    s.setTimeout(3000, () => { console.log("timeout"); process.exit(); });
    s.on("connect", () => { console.log("connected"); s.destroy(); });
    s.on("error", (e) => console.log(e.code));`;
  return (await output(ns.spawn(process.execPath, ["-e", script]))).stdout.trim();
}

async function pidsInside(): Promise<number[]> {
  const { stdout } = await run("ip", ["netns", "pids", ns.name]);
  return stdout.split("\n").filter(Boolean).map(Number);
}

async function namespaces(): Promise<string[]> {
  return (await run("ip", ["netns", "list"])).stdout.split("\n").map((l) => l.split(" ")[0] ?? "");
}

describe("network namespace for agent tests", () => {
  it("has its own loopback and no default route: the host's 127.0.0.1 servers are out of reach", async () => {
    const [port] = (await freePorts(1)) as [number];
    const loopback = await hostServer("127.0.0.1", port);
    expect(ns.name).toMatch(new RegExp(`^gh-netns-${process.pid}-\\d+$`));
    expect(ns.hostLink.length).toBeLessThanOrEqual(15);

    expect(await dialFromInside("127.0.0.1", port)).toBe("ECONNREFUSED");
    expect(await dialFromInside(ns.hostAddress, port)).toBe("ECONNREFUSED"); // bound to loopback only
    expect(loopback.peers).toEqual([]);

    const routes = (await output(ns.spawn("ip", ["-4", "route"]))).stdout;
    expect(routes).not.toMatch(/default/);
    expect(routes.trim().split("\n")).toHaveLength(1); // just the /30 of the veth
  });

  it("reaches the host at hostAddress", async () => {
    const [port] = (await freePorts(1)) as [number];
    const host = await hostServer(ns.hostAddress, port);
    expect(await dialFromInside(ns.hostAddress, port)).toBe("connected");
    expect(host.peers).toEqual([ns.nsAddress]);
  });

  it("a server inside is reachable from the host at nsAddress; the spawned child is the command itself", async () => {
    const [port] = (await freePorts(1)) as [number];
    const script = `
      require("node:net").createServer((s) => s.end("hello from " + process.pid))
        .listen(${port}, ${JSON.stringify(ns.nsAddress)}, () => console.log("listening " + process.pid));`;
    const child = ns.spawn(process.execPath, ["-e", script]);
    const done = output(child);
    const [line] = (await once(child.stdout?.setEncoding("utf8") ?? child, "data")) as [string];
    expect(line.trim()).toBe(`listening ${child.pid}`);
    expect(await pidsInside()).toEqual([child.pid]);

    const socket = connect(port, ns.nsAddress);
    let reply = "";
    socket.setEncoding("utf8").on("data", (d: string) => (reply += d));
    await once(socket, "end");
    expect(reply).toBe(`hello from ${child.pid}`);

    child.kill("SIGTERM");
    expect((await done).signal).toBe("SIGTERM");
    expect(await pidsInside()).toEqual([]);
  });

  it("removes namespaces left by a dead process when creating one", async () => {
    const dead = spawn(process.execPath, ["-e", ""]);
    await once(dead, "exit");
    const leftover = `gh-left-${dead.pid}-0`;
    await run("ip", ["netns", "add", leftover]);
    expect(await namespaces()).toContain(leftover);
    const other = await createNamespace();
    try {
      expect(await namespaces()).not.toContain(leftover);
      expect(other.hostAddress).not.toBe(ns.hostAddress);
    } finally {
      await other.destroy();
    }
  });

  it("fails with what is needed when not root, and when iproute2 is missing", async () => {
    const root = join(import.meta.dirname, "..", "..", "..");
    const module = join(root, "test", "support", "netns.ts");
    const script = `import(${JSON.stringify(module)}).then((m) => m.createNamespace())
      .then(() => console.log("created"), (e) => console.log(e.message));`;
    const attempt = async (options: { uid?: number; env?: NodeJS.ProcessEnv }) =>
      (await output(spawn(process.execPath, ["--import", "tsx", "-e", script], { cwd: root, ...options }))).stdout;
    expect(await attempt({ uid: 65534 })).toContain(NETNS_REQUIREMENTS);
    expect(await attempt({ env: { ...process.env, PATH: "/nonexistent" } })).toContain(NETNS_REQUIREMENTS);
  });

  // last: it takes the namespace the other tests use
  it("destroy kills what still runs inside, removes the namespace and its veth pair, and is idempotent", async () => {
    const sleeper = ns.spawn("sh", ["-c", "echo ready; exec sleep 60"]);
    const done = output(sleeper);
    await once(sleeper.stdout ?? sleeper, "data"); // inside by now: ip netns exec has entered the namespace
    await ns.destroy();
    expect((await done).signal).toBe("SIGKILL");
    expect(await namespaces()).not.toContain(ns.name);
    const links = (await run("ip", ["-o", "-4", "addr"])).stdout;
    expect(links).not.toContain(`${ns.hostAddress}/30`);
    await ns.destroy();
  });
});
