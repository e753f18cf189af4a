import type ssh2 from "ssh2";
import type { Log } from "../../core/adapter/index.js";
import type { ShellAnalyzer } from "../../core/inspect/shell/index.js";
import type { Masker } from "../../core/masking/index.js";
import type { SshConnectionConfig } from "../../core/policy/schema.js";
import { readsCommandsFromStdin, ShellInput } from "../../core/terminal/index.js";
import type { GatedSession } from "../../core/session/gate.js";
import { admitOnChannel, errorText, failChannel, refuseChannel, serveChannel } from "./channel.js";
import { ChannelPipe } from "./channel-pipe.js";
import { sshConfig, type ClientSession } from "./client-session.js";
import type { ForwardingRefusals } from "./forwarding.js";
import { sftpFacts } from "./sftp.js";
import { serveSftp } from "./sftp-channel.js";
import { fixWindowResume } from "./ssh2-window-fix.js";

export interface SessionChannelDeps {
  analyzer: ShellAnalyzer;
  maskerFor(connection: SshConnectionConfig): Masker | undefined;
  log: Log;
  session: ClientSession;
  forwarding: ForwardingRefusals;
}

/** Environment a client may set on the target (locale and time zone); everything else is refused. */
const ALLOWED_ENV = /^(?:LANG|LANGUAGE|LC_[A-Z_]+|TZ)$/;

interface Pty {
  cols: number;
  rows: number;
  width: number;
  height: number;
  term: string;
}

/**
 * One session channel of a client, and the requests on it: the terminal and environment it asks for (pty, env,
 * window-change, signal; agent and X11 forwarding are refused), then what it runs. An exec command and the sftp
 * subsystem are admitted before the target's channel is opened; a shell's lines are admitted one by one as they
 * are typed. The target's channel mirrors the client's (same pty, same allowed environment).
 */
export function serveSessionChannel(deps: SessionChannelDeps, channel: ssh2.Session): void {
  const { analyzer, log, session: clientSession } = deps;
  let pty: Pty | undefined;
  /** The target's channel, once opened. */
  let live: ssh2.ClientChannel | undefined;
  const env: Record<string, string> = {};
  const resize = (p: Pty) => {
    try {
      clientSession.session?.recording.record("resize", { cols: p.cols, rows: p.rows });
    } catch {
      // recording full: the session is ended by the output path
    }
  };
  /** The typed lines of a shell (or of an exec that runs one), each admitted before its Enter reaches the target. */
  const shellInput = (session: GatedSession, ch: ssh2.ServerChannel, channelName: "shell" | "exec") =>
    new ShellInput({
      pty: pty !== undefined,
      analyze: (text) => analyzer.analyze(text),
      submit: (text, facts) => admitOnChannel(session, { text, facts, data: { channel: channelName } }, ch),
      toTarget: (b) => live?.write(b),
      toClient: (b) => ch.write(b),
      onError: (err) => {
        failChannel(ch, `shell input failed: ${errorText(err)}`);
        live?.close();
      },
    });
  const serve = (ch: ssh2.ServerChannel, run: () => Promise<void>) =>
    serveChannel(ch, run, log, () => clientSession.session?.id);

  channel.on("pty", (acc, _rej, p) => {
    pty = { cols: p.cols, rows: p.rows, width: p.width, height: p.height, term: p.term };
    acc?.();
  });
  channel.on("window-change", (acc, _rej, w) => {
    if (pty) {
      pty = { ...pty, cols: w.cols, rows: w.rows, width: w.width, height: w.height };
      live?.setWindow(w.rows, w.cols, w.height, w.width);
      resize(pty);
    }
    acc?.();
  });
  channel.on("env", (acc, rej, e) => {
    if (ALLOWED_ENV.test(e.key)) {
      env[e.key] = e.val;
      acc?.();
    } else {
      rej?.();
    }
  });
  // agent and X11 forwarding are refused like port forwarding, and recorded the same way
  channel.on("auth-agent", (_acc, rej) => {
    rej?.();
    deps.forwarding.record("auth-agent", {});
  });
  channel.on("x11", (_acc, rej, x) => {
    rej?.();
    deps.forwarding.record("x11", { screen: x.screen, single: x.single });
  });
  channel.on("signal", (acc, _rej, s) => {
    live?.signal(s.name);
    acc?.();
  });

  channel.on("exec", (acc, _rej, e) => {
    const ch = fixWindowResume(acc());
    serve(ch, async () => {
      const ok = await clientSession.usable(ch);
      if (!ok) return;
      if (pty) resize(pty);
      const analysis = analyzer.analyze(e.command);
      const verdict = await admitOnChannel(
        ok.session,
        { text: e.command, facts: analysis.facts, data: { channel: "exec" } },
        ch,
      );
      if (!verdict.forward) return refuseChannel(ch, verdict.message, verdict.exitStatus);
      // a shell run without a command string reads its commands from stdin: they are judged line by line
      const input = readsCommandsFromStdin(analysis.facts.commands) ? shellInput(ok.session, ch, "exec") : undefined;
      ok.target.exec(e.command, { pty: pty ? ptyOptions(pty) : false, env }, (err, tch) => {
        if (err) return failChannel(ch, `target refused the command channel: ${err.message}`);
        live = tch;
        new ChannelPipe(ok.session, ch, tch, deps.maskerFor(sshConfig(ok.session)), input);
      });
    });
  });

  channel.on("shell", (acc) => {
    const ch = fixWindowResume(acc());
    serve(ch, async () => {
      const ok = await clientSession.usable(ch);
      if (!ok) return;
      if (pty) resize(pty);
      const input = shellInput(ok.session, ch, "shell");
      ok.target.shell(pty ? ptyOptions(pty) : false, { env }, (err, tch) => {
        if (err) return failChannel(ch, `target refused the shell: ${err.message}`);
        live = tch;
        new ChannelPipe(ok.session, ch, tch, deps.maskerFor(sshConfig(ok.session)), input);
      });
    });
  });

  channel.on("subsystem", (acc, rej, s) => {
    if (s.name !== "sftp") return rej?.();
    const ch = fixWindowResume(acc());
    serve(ch, async () => {
      const ok = await clientSession.usable(ch);
      if (!ok) return;
      const facts = sftpFacts(["sftp"]);
      const verdict = await admitOnChannel(ok.session, { text: "sftp", facts, data: { channel: "subsystem" } }, ch);
      // exit status 1, not the exec refusal status: what a refused sftp subsystem has always answered
      if (!verdict.forward) return refuseChannel(ch, verdict.message, 1);
      ok.target.subsys("sftp", (err, tch) => {
        if (err) return failChannel(ch, `target refused sftp: ${err.message}`);
        live = tch;
        serveSftp(ok.session, ch, tch, log);
      });
    });
  });
}

function ptyOptions(p: Pty): ssh2.PseudoTtyOptions {
  return { rows: p.rows, cols: p.cols, height: p.height, width: p.width, term: p.term };
}
