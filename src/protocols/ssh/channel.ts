import type ssh2 from "ssh2";
import { errorText, type Log } from "../../core/adapter/index.js";
import type { RequestFacts } from "../../core/policy/facts.js";
import type { GatedSession } from "../../core/session/gate.js";
import { SSH_REFUSALS } from "./refusals.js";

/**
 * How the gateway speaks to a client's channel, for every part that serves one (session channels, the byte pipe,
 * sftp): a request admitted with its approval hold shown on stderr, a refusal, a failure. One place, so every
 * refusal and failure reads the same to the user (`gatehouse: ...` on stderr) and ends with the same exit status.
 */

/**
 * An admitted request, or a refusal with its message and the exit status it ends an exec channel with. It is a
 * LineVerdict, so shell input and sftp take it as it is.
 */
export type ChannelVerdict = { forward: true } | { forward: false; message: string; exitStatus: number };

/** Admits one request of the channel's session; while it is held for approval, the client is told on stderr. */
export async function admitOnChannel(
  session: GatedSession,
  request: { text: string; facts: RequestFacts; data: Record<string, unknown> },
  ch: ssh2.ServerChannel,
): Promise<ChannelVerdict> {
  const a = await session.admit({ ...request, onHold: (n) => ch.stderr.write(`gatehouse: ${n.message}\r\n`) });
  if (a.forward) return { forward: true };
  return {
    forward: false,
    message: `${a.kind.replace(/_/g, " ")}: ${a.message}`,
    exitStatus: SSH_REFUSALS.request[a.kind],
  };
}

/** Answers a channel that is not served (session refused, request denied): the reason on stderr, then `exitStatus`. */
export function refuseChannel(ch: ssh2.ServerChannel, message: string, exitStatus: number): void {
  ch.stderr.write(`gatehouse: ${message}\r\n`);
  ch.exit(exitStatus);
  endChannel(ch);
}

/** Ends a channel with the reason on stderr and exit status 1, after the output it still has queued. */
export function failChannel(ch: ssh2.ServerChannel, message: string): void {
  const text = `gatehouse: ${message}\r\n`;
  if (ch.writableEnded) {
    ch.stderr.write(text);
    return;
  }
  // stderr shares the channel's window with stdout, and the channel closes once its stdout is written: the reason
  // is written when stdout's queue is out, and the channel ends when the reason is out
  ch.write(Buffer.alloc(0), () => {
    ch.stderr.write(text, () => {
      ch.exit(1);
      ch.end();
    });
  });
}

/**
 * Ends the client's channel once what its stderr still queues is out. ssh2 sends EOF and CLOSE as soon as stdout
 * ends, dropping stderr bytes that still wait for window space: a slow client would lose the end of its stderr.
 * Writes to a stream are handled in order, so an empty write's callback runs once the earlier ones are sent.
 */
export function endChannel(ch: ssh2.ServerChannel): void {
  if (ch.stderr.writableLength === 0) {
    ch.end();
    return;
  }
  ch.stderr.write(Buffer.alloc(0), () => ch.end());
}

/** Serves one channel; an unexpected failure ends that channel with the cause, never the process. */
export function serveChannel(
  ch: ssh2.ServerChannel,
  serve: () => Promise<void>,
  log: Log,
  sessionId: () => string | undefined,
): void {
  serve().catch((err: unknown) => {
    log("ssh: channel failed", { err: String(err), session: sessionId() });
    failChannel(ch, `channel failed: ${errorText(err)}`);
  });
}

// shared by the SSH modules that import it from here
export { errorText };
