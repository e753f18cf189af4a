/**
 * The real compiled gateway (`gatehouse serve`) inside a network namespace of its own, where the test servers on the
 * host's 127.0.0.1 are out of its reach, and real `gatehouse agent` processes on the host that reach them. For the
 * through-agent*.test.ts files (issue 16, "Done when").
 *
 * Events are read, not slept for: the gateway's stdout for its listeners, an audit file sink (one canonical-JSON
 * record per line, delivered after each commit) for evidence while it runs, the admin API for the agents' state,
 * and each agent's own output. The data directory itself is read only after the gateway stopped.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentStatus } from "../../../src/agent/registry.js";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { generateEd25519KeyPair } from "../../../src/protocols/ssh/host-key.js";
import { compiledCli } from "../../support/compiled-cli.js";
import { flowFields, freePorts, gatewayYaml } from "../../support/gateway-config.js";
import { createNamespace, type Namespace } from "../../support/netns.js";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns something truthy; the error says what was awaited and, via `detail`, what was seen. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  o: { ms?: number; detail?: () => string } = {},
): Promise<T> {
  const until = Date.now() + (o.ms ?? 15_000);
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${o.detail ? `\n${o.detail()}` : ""}`);
    await sleep(25);
  }
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to close. */
  ms: number;
}

/** Runs a program to its end (never blocking the event loop), with `input` on its stdin. */
export function run(
  command: string,
  args: readonly string[],
  o: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: o.env ?? process.env });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, o.timeoutMs ?? 30_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.on("error", () => undefined);
    child.stdin.end(o.input ?? "");
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** A child process whose stdout and stderr are collected into one text. */
export interface Watched {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves with the exit code, or the signal that ended it. */
  exited: Promise<number | NodeJS.Signals>;
  /** Waits until the output matches. */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpExecArray>;
}

export function watch(child: ChildProcess, what: string): Watched {
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once("exit", (code, signal) => resolve(signal ?? code ?? -1)),
  );
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    waitFor: (pattern, ms) =>
      waitFor(
        `${what} to print ${String(pattern)}`,
        () => {
          const m = pattern.exec(out);
          if (!m && done) throw new Error(`${what} exited without printing ${String(pattern)}:\n${out}`);
          return m ?? undefined;
        },
        { ms, detail: () => `${what} printed:\n${out}` },
      ),
  };
}

/** A connection the agent serves: the name it announces and the target it dials for it. */
export interface AgentConnection {
  name: string;
  host: string;
  port: number;
}

export interface AgentProcess extends Watched {
  /** The instance id it announced (`PID-hex`), once the gateway put it in service. */
  instance: string;
}

export interface IsolatedGateway {
  ns: Namespace;
  dir: string;
  data: string;
  configPath: string;
  /** The compiled CLI's launcher: `node cli ARGS`. */
  cli: string;
  /** Where clients on the host reach the gateway's listeners. */
  host: string;
  ports: { api: number; postgres: number; ssh: number; http: number; agents: number };
  api: string;
  /** ci-bot's token (group ci). */
  token: string;
  /** A key registered to key-bot (group ci) under identity.ssh_keys. */
  sshKeyPath: string;
  /** The agent's token (its sha256 is under agents.tokens as "office"). */
  agentToken: string;
  /** The agent listener's pin: from `gatehouse agents pin` before the gateway started, or from its startup output. */
  pin: string;
  gateway: Watched;
  /** Runs the compiled CLI on the host. */
  cliRun(args: readonly string[], o?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Run>;
  /** Writes an agent.yaml (to a new file) and runs `gatehouse agent` with it on the host; does not wait. */
  spawnAgent(o?: { token?: string; connections?: AgentConnection[] }): Watched;
  /** spawnAgent, then waits until the gateway lists the new process's instance as connected. */
  startAgent(o?: { token?: string; connections?: AgentConnection[] }): Promise<AgentProcess>;
  /** The agents as the admin API shows them. */
  agents(): Promise<AgentStatus[]>;
  /** Every audit record the file sink has received so far, in seq order. */
  audit(type?: string): AuditRecord[];
  /** Waits for the first audit record (in seq order) that `match` accepts. */
  waitForAudit(what: string, match: (r: AuditRecord) => boolean, ms?: number): Promise<AuditRecord>;
  /** SIGTERM to the gateway; resolves with its exit status. */
  stopGateway(): Promise<number | NodeJS.Signals>;
  /** Kills every child still running, removes the namespace and the directory. */
  close(): Promise<void>;
}

export interface IsolatedGatewayOptions {
  label: string;
  /** Connection blocks (pgConnectionYaml, sshConnectionYaml, httpConnectionYaml...). */
  connections: string[];
  /** What the agent serves by default (startAgent without `connections`). */
  agentConnections: AgentConnection[];
  /** More top-level YAML. */
  top?: string;
  /**
   * Where the agent's pin comes from: `gatehouse agents pin --config` run before the gateway starts (the default,
   * as an operator would), or the gateway's startup output (one CLI run less).
   */
  pinFrom?: "cli" | "serve";
}

export async function startIsolatedGateway(o: IsolatedGatewayOptions): Promise<IsolatedGateway> {
  const cli = await compiledCli();
  const dir = mkdtempSync(join(tmpdir(), `gatehouse-${o.label}-`));
  const children: ChildProcess[] = [];
  let ns: Namespace | undefined;
  const close = async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await ns?.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    ns = await createNamespace({ label: o.label });
    const host = ns.nsAddress;
    const data = join(dir, "data");
    // the sink lives outside the data directory: the tests read it while the gateway writes the data directory
    const sink = join(dir, "audit.jsonl");
    const bot = generateStaticToken();
    const agentToken = generateStaticToken();
    const sshKey = generateEd25519KeyPair();
    const sshKeyPath = join(dir, "key_ed25519");
    writeFileSync(sshKeyPath, sshKey.private, { mode: 0o600 });
    const [api, postgres, ssh, http, agents] = (await freePorts(5)) as [number, number, number, number, number];
    const ports = { api, postgres, ssh, http, agents };
    const listen = Object.fromEntries(Object.entries(ports).map(([k, p]) => [k, `${host}:${p}`]));
    const configPath = join(dir, "gatehouse.yaml");
    writeFileSync(
      configPath,
      gatewayYaml({
        data,
        tokens: [{ name: "ci-bot", sha256: bot.sha256, groups: ["ci"] }],
        sshKeys: [{ name: "key-bot", key: sshKey.public, groups: ["ci"] }],
        connections: o.connections,
        top: [
          `listen: { ${flowFields(listen)} }`,
          "agents:",
          "  heartbeat: 1s",
          "  tokens:",
          `    - { name: office, sha256: ${agentToken.sha256} }`,
          "audit:",
          `  sinks: [ { file: ${JSON.stringify(sink)} } ]`,
          o.top ?? "",
        ].join("\n"),
      }),
    );

    const cliRun = (args: readonly string[], ro: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) =>
      run(process.execPath, [cli, ...args], ro);
    let pin = "";
    if (o.pinFrom !== "serve") {
      // the pin an operator would copy into agent.yaml; this also generates the listener's key into DATA/keys
      const pinRun = await cliRun(["agents", "pin", "--config", configPath]);
      if (pinRun.code !== 0) throw new Error(`gatehouse agents pin failed: ${pinRun.stderr}`);
      pin = pinRun.stdout.trim();
    }

    const gatewayChild = ns.spawn(process.execPath, [cli, "serve", "--config", configPath], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(gatewayChild);
    const gateway = watch(gatewayChild, "the gateway");
    // serve prints the admin API line, then one line per listener, the agent listener's last, in one write
    const served = await gateway.waitFor(/^ {2}agents: listening \(.*\); pin: (\S+)$/m, 60_000);
    if (o.pinFrom === "serve") pin = served[1] ?? "";
    else if (served[1] !== pin) throw new Error(`the gateway serves pin ${served[1]}, agents pin printed ${pin}`);

    let auditSeen: AuditRecord[] = [];
    let auditBytes = 0;
    const audit = (type?: string) => {
      if (existsSync(sink)) {
        const text = readFileSync(sink, "utf8");
        if (text.length !== auditBytes) {
          // a crash can repeat a line (see the sinks' README); a checkpoint shares the seq of the record it signs
          const unique = new Map<string, AuditRecord>();
          for (const line of text.split("\n")) {
            if (!line) continue;
            try {
              const r = JSON.parse(line) as AuditRecord;
              unique.set(`${r.type}/${r.seq}`, r);
            } catch {
              // the line being written: read next time
            }
          }
          auditSeen = [...unique.values()].sort((a, b) => a.seq - b.seq);
          auditBytes = text.length;
        }
      }
      return type === undefined ? auditSeen : auditSeen.filter((r) => r.type === type);
    };

    const agentsStatus = async () => {
      const res = await fetch(`http://${host}:${api}/api/agents`, {
        headers: { authorization: `Bearer ${bot.token}` },
      });
      if (!res.ok) throw new Error(`GET /api/agents: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { agents: AgentStatus[] }).agents;
    };

    const spawnAgent = (ao: { token?: string; connections?: AgentConnection[] } = {}) => {
      const path = join(dir, `agent-${randomUUID().slice(0, 8)}.yaml`);
      writeFileSync(
        path,
        [
          "name: office",
          `token: ${JSON.stringify(ao.token ?? agentToken.token)}`,
          `gateway: { address: "${host}:${agents}", pin: "${pin}" }`,
          "heartbeat: 1s",
          "reconnect: { min: 100ms, max: 1s }",
          "connections:",
          ...(ao.connections ?? o.agentConnections).map(
            (c) => `  - { name: ${c.name}, target: { host: ${c.host}, port: ${c.port} } }`,
          ),
          "",
        ].join("\n"),
      );
      const child = spawn(process.execPath, [cli, "agent", "--config", path], { stdio: ["ignore", "pipe", "pipe"] });
      children.push(child);
      return watch(child, "the agent");
    };

    return {
      ns,
      dir,
      data,
      configPath,
      cli,
      host,
      ports,
      api: `http://${host}:${api}`,
      token: bot.token,
      sshKeyPath,
      agentToken: agentToken.token,
      pin,
      gateway,
      cliRun,
      spawnAgent,
      async startAgent(ao = {}) {
        const agent = spawnAgent(ao);
        // the instance id is PID-hex; it is in service once the gateway lists it (after the agent acknowledged
        // welcome), which is later than agent.connected is on record
        const live = await waitFor(
          `agent ${agent.pid} in service`,
          async () => {
            if (agent.child.exitCode !== null) throw new Error(`the agent exited:\n${agent.output()}`);
            const all = (await agentsStatus()).flatMap((a) => a.instances);
            return all.find((i) => i.instance.startsWith(`${agent.pid}-`));
          },
          { detail: () => `the agent printed:\n${agent.output()}` },
        );
        return { ...agent, instance: live.instance };
      },
      agents: agentsStatus,
      audit,
      waitForAudit: (what, match, ms) =>
        waitFor(`audit record: ${what}`, () => audit().find(match), {
          ms,
          detail: () =>
            `audit types so far: ${audit()
              .map((r) => r.type)
              .join(", ")}\ngateway output:\n${gateway.output()}`,
        }),
      async stopGateway() {
        if (gatewayChild.exitCode === null && gatewayChild.signalCode === null) gatewayChild.kill("SIGTERM");
        return gateway.exited;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Every file under `dir` that contains `text` (bytes, so SQLite pages and evidence segments count too). */
export function filesContaining(dir: string, text: string): string[] {
  const needle = Buffer.from(text);
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSyncSafe(d)) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes(needle)) found.push(p);
    }
  };
  walk(dir);
  return found;
}

function readdirSyncSafe(d: string) {
  try {
    return readdirSync(d, { withFileTypes: true });
  } catch {
    return [];
  }
}
