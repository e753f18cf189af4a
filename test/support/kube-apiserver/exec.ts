/**
 * pods/exec over WebSocket, the way kubectl >= 1.30 does it (client-go tools/remotecommand/websocket.go), running a
 * REAL local process for the command.
 *
 * Subprotocols `v5.channel.k8s.io` (what kubectl offers) and `v4.channel.k8s.io`. Every message is binary; its first
 * byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 error (one `Status` JSON when the command ends), 4 resize
 * (`{"Width":W,"Height":H}`). v5 adds 255 = CLOSE: `[255, n]` half-closes channel n (kubectl sends `[255, 0]` at the
 * end of its stdin). After the Status the server closes the WebSocket normally; kubectl returns when stdout/stderr
 * reach that close and it has read the Status, and exits with the code in it.
 *
 * tty=true: the command gets a pseudo-terminal from util-linux `script`; a resize sets that terminal's size with
 * `stty -F` on the pty the command holds, and the kernel sends it SIGWINCH.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import type { WebSocket } from "ws";
import type { Status } from "./status.js";

export const EXEC_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"] as const;

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

export interface ExecRequest {
  command: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

export interface ExecRecord extends ExecRequest {
  protocol: string;
  /** sizes received on the resize channel, in order */
  resizes: { Width: number; Height: number }[];
  /** whether the client half-closed stdin (v5 CLOSE of channel 0) */
  stdinClosed: boolean;
  exitCode?: number | null;
}

export function execRequest(q: URLSearchParams): ExecRequest {
  const flag = (name: string, dflt: boolean) => (q.has(name) ? ["true", "1"].includes(q.get(name) ?? "") : dflt);
  return {
    command: q.getAll("command"),
    stdin: flag("stdin", false),
    stdout: flag("stdout", true),
    stderr: flag("stderr", true),
    tty: flag("tty", false),
  };
}

/** What the error channel carries when the command has ended with `code`. */
export function exitStatus(code: number): Status | { metadata: Record<string, never>; status: "Success" } {
  if (code === 0) return { metadata: {}, status: "Success" };
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [...], exit code ${code}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(code) }] },
  };
}

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** Runs the exec session on an open WebSocket until the command ends or the client goes away. */
export function serveExec(ws: WebSocket, record: ExecRecord): void {
  const req: ExecRequest = record;
  const v5 = ws.protocol === "v5.channel.k8s.io";
  const send = (channel: number, data: Buffer | string) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]));
  };
  const finish = (status: unknown) => {
    send(ERROR, JSON.stringify(status));
    ws.close(1000);
  };

  if (req.command.length === 0) {
    finish({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "you must specify at least one command for the container",
      reason: "BadRequest",
      code: 400,
    });
    return;
  }

  const env = { ...process.env, HOME: tmpdir(), ...(req.tty ? { TERM: "xterm" } : {}) };
  // detached: the command leads its own process group, so a client that goes away takes all of it down
  const child: ChildProcess = req.tty
    ? spawn("script", ["-qfec", req.command.map(shellQuote).join(" "), "/dev/null"], {
        cwd: tmpdir(),
        env,
        detached: true,
      })
    : spawn(req.command[0] as string, req.command.slice(1), { cwd: tmpdir(), env, detached: true });

  let ended = false;
  child.stdin?.on("error", () => {}); // the command may exit without reading its input
  child.stdout?.on("data", (d: Buffer) => req.stdout && send(STDOUT, d));
  // with a tty there is no stderr channel (kubectl asks for stderr=false); script's own complaints go to stdout
  child.stderr?.on("data", (d: Buffer) => send(req.tty || !req.stderr ? STDOUT : STDERR, d));
  if (!req.stdin) child.stdin?.end();

  child.on("error", (err: NodeJS.ErrnoException) => {
    if (ended) return;
    ended = true;
    record.exitCode = null;
    const message =
      err.code === "ENOENT"
        ? `exec: "${req.command[0]}": executable file not found in $PATH`
        : `exec failed: ${err.message}`;
    finish({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason: "InternalError",
      code: 500,
    });
  });
  // "close", not "exit": stdout and stderr are drained by then, so the Status is the last frame
  child.on("close", (code, signal) => {
    if (ended) return;
    ended = true;
    const exit = code ?? 128 + (signal ? signalNumber(signal) : 0);
    record.exitCode = exit;
    finish(exitStatus(exit));
  });

  // stdin writes and resizes are applied in arrival order: a size set before the user typed `stty size` shows in it
  let queue: Promise<void> = Promise.resolve();
  const enqueue = (step: () => Promise<void> | void) => {
    queue = queue.then(step).catch(() => {});
  };

  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (!isBinary || data.length === 0) return;
    const channel = data[0];
    const payload = data.subarray(1);
    if (channel === STDIN && req.stdin) {
      enqueue(() => {
        if (child.stdin && !child.stdin.writableEnded) child.stdin.write(payload);
      });
    } else if (channel === RESIZE) {
      try {
        const size = JSON.parse(payload.toString("utf8")) as { Width: number; Height: number };
        record.resizes.push(size);
        if (req.tty) enqueue(() => resizePty(child, size));
      } catch {
        // a malformed resize is ignored, as the kubelet does
      }
    } else if (channel === CLOSE && v5 && payload[0] === STDIN) {
      record.stdinClosed = true;
      enqueue(() => void child.stdin?.end());
    }
  });
  ws.on("close", () => {
    if (ended || child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  const n = (
    { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 } as Partial<Record<string, number>>
  )[signal];
  return n ?? 0;
}

/** Sets the size of the pty that `script` gave the command: found as the command's stdin, /proc/PID/fd/0. */
async function resizePty(script: ChildProcess, size: { Width: number; Height: number }): Promise<void> {
  if (!size.Width || !size.Height) return;
  for (let attempt = 0; attempt < 50; attempt++) {
    const pts = commandPty(script.pid);
    if (pts) {
      await new Promise<void>((resolve) =>
        execFile("stty", ["-F", pts, "rows", String(size.Height), "cols", String(size.Width)], () => resolve()),
      );
      return;
    }
    if (script.exitCode !== null) return;
    await new Promise((r) => setTimeout(r, 20)); // script has not started the command yet
  }
}

function commandPty(scriptPid: number | undefined): string | undefined {
  if (scriptPid === undefined) return undefined;
  try {
    const children = readFileSync(`/proc/${scriptPid}/task/${scriptPid}/children`, "utf8").trim().split(/\s+/);
    for (const pid of children.filter(Boolean)) {
      const fd0 = readlinkSync(`/proc/${pid}/fd/0`);
      if (fd0.startsWith("/dev/pts/")) return fd0;
    }
  } catch {
    // not started yet, or gone
  }
  return undefined;
}
