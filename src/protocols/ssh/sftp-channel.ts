import type ssh2 from "ssh2";
import type { Log } from "../../core/adapter/index.js";
import type { GatedSession } from "../../core/session/gate.js";
import { admitOnChannel, errorText, failChannel } from "./channel.js";
import { SftpObserver } from "./sftp.js";

/**
 * Serves an admitted sftp subsystem: the client's and the target's channels are joined through an SftpObserver,
 * which admits each path operation before it is forwarded. Each finished transfer goes into the recording and the
 * audit log; a transfer whose audit record cannot be written ends the channel (fail closed: no further transfer
 * without its evidence), and a malformed SFTP stream ends it too.
 */
export function serveSftp(session: GatedSession, ch: ssh2.ServerChannel, tch: ssh2.ClientChannel, log: Log): void {
  const observer = new SftpObserver({
    submit: (text, facts) => admitOnChannel(session, { text, facts, data: { channel: "sftp" } }, ch),
    toTarget: (b) => tch.write(b),
    toClient: (b) => ch.write(b),
    onTransfer: (t) => {
      try {
        session.recording.record("result", { sftp: t.op, path: t.path, bytes_read: t.read, bytes_written: t.written });
      } catch {
        // the audit event below carries the same facts
      }
      session
        .audit({
          type: "sftp.transfer",
          data: { op: t.op, path: t.path, bytes_read: t.read, bytes_written: t.written },
        })
        .catch((err: unknown) => {
          log("ssh: an sftp transfer could not be recorded", { err: String(err), session: session.id });
          failChannel(ch, `evidence unavailable, sftp ended: ${errorText(err)}`);
          tch.close();
        });
    },
    onProtocolError: (message) => {
      log("ssh: sftp stream", { message });
      ch.close();
      tch.close();
    },
  });
  tch.on("data", (b: Buffer) => observer.fromTarget(b));
  ch.on("data", (b: Buffer) => observer.fromClient(b));
  ch.on("end", () => tch.end());
  tch.on("exit", (code: number | null) => ch.exit(code ?? 0));
  tch.on("close", () => {
    observer.close();
    ch.end();
  });
  ch.on("close", () => tch.close());
}
