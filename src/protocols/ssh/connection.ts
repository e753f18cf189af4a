import type ssh2 from "ssh2";
import { TargetUnreachableError, type TargetConnector } from "../../core/adapter/index.js";
import type { ShellAnalyzer } from "../../core/inspect/shell/index.js";
import type { Identity } from "../../core/identity/index.js";
import type { Masker } from "../../core/masking/index.js";
import type { RequestFacts } from "../../core/policy/facts.js";
import type { SshConnectionConfig } from "../../core/policy/schema.js";
import { SessionRefusedError, type Gate, type GatedSession } from "../../core/session/gate.js";
import { OutputMasker, RecordingTee, ShellInput, type LineVerdict } from "../../core/terminal/index.js";
import { parseLoginUser, type SshAuthenticator } from "./auth.js";
import { SftpObserver } from "./sftp.js";
import { fixWindowResume } from "./ssh2-window-fix.js";
import { connectTarget, TargetError } from "./target.js";

export interface SshClientDeps {
  gate: Gate;
  connector: TargetConnector;
  auth: SshAuthenticator;
  analyzer: ShellAnalyzer;
  maskerFor(connection: SshConnectionConfig): Masker | undefined;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Registers the connection so the listener can end it on shutdown. */
  track(end: () => Promise<void>): () => void;
}

/** Environment a client may set on the target (locale and time zone); everything else is refused. */
const ALLOWED_ENV = /^(?:LANG|LANGUAGE|LC_[A-Z_]+|TZ)$/;
const EXIT_DENIED = 126;

interface Pty {
  cols: number;
  rows: number;
  width: number;
  height: number;
  term: string;
}

/**
 * One client connection: authenticate, open the gated session (access + session.start) and dial the target, then
 * serve session channels. Every exec command, shell line and SFTP path operation goes through `session.admit`
 * before its bytes reach the target.
 */
export function handleClient(deps: SshClientDeps, client: ssh2.Connection, info: ssh2.ClientInfo): void {
  const clientAddress = `${info.ip}:${info.port}`;
  let identity: Identity | undefined;
  let method = "";
  let username = "";
  let session: GatedSession | undefined;
  let target: ssh2.Client | undefined;
  let refusal: string | undefined;
  let ready: Promise<void> | undefined;
  /** The gate's openSession while it runs (settles to undefined when refused). */
  let opening: Promise<GatedSession | undefined> | undefined;
  let closing: Promise<void> | undefined;

  const finish = (reason: string): Promise<void> => {
    closing ??= (async () => {
      target?.end();
      // a session still being opened (session.start written, recording started) would otherwise never end
      const s = session ?? (await opening);
      await s
        ?.close(reason)
        .catch((err: unknown) => deps.log("ssh: session evidence not sealed", { err: String(err) }));
    })();
    return closing;
  };
  const untrack = deps.track(async () => {
    client.end();
    await finish("gateway shutdown");
  });

  client.on("authentication", (ctx) => {
    username = ctx.username;
    const attempt = async () => {
      if (ctx.method === "password") return deps.auth.password(ctx.password);
      if (ctx.method === "publickey") return deps.auth.publicKey(ctx);
      return undefined;
    };
    attempt().then(
      async (result) => {
        if (!result) return ctx.reject(["publickey", "password"]);
        if (result.ok === "check") return ctx.accept();
        if (result.ok === false) {
          await deps.gate.authFailed({
            protocol: "ssh",
            connection: parseLoginUser(ctx.username).connection,
            clientAddress,
            code: result.code,
            message: `${ctx.method}: ${result.message}`,
          });
          return ctx.reject(["publickey", "password"]);
        }
        identity = result.identity;
        method = result.method;
        ctx.accept();
      },
      (err: unknown) => {
        deps.log("ssh: authentication error", { err: String(err) });
        ctx.reject();
      },
    );
  });

  client.on("ready", () => {
    ready = open();
  });

  async function open(): Promise<void> {
    if (!identity || closing) return;
    const login = parseLoginUser(username);
    const opened = deps.gate.openSession({
      identity,
      connection: login.connection,
      protocol: "ssh",
      clientAddress,
      data: { ssh_user: username, auth_method: method, client_version: info.header.versions.software },
    });
    opening = opened.catch(() => undefined);
    try {
      session = await opened;
    } catch (err) {
      refusal = err instanceof SessionRefusedError ? err.message : `session refused: ${String(err)}`;
      return;
    }
    // the client left (or the gateway stopped) meanwhile: finish() closes the session, no target is dialled
    if (closing) {
      refusal = "session ended";
      return;
    }
    // openSession refuses a connection of another type
    const config = session.connection.config as SshConnectionConfig;
    const targetUser = login.targetUser ?? config.target.user;
    try {
      const sock = await deps.connector.open(config, config.target, "session");
      target = await connectTarget(config.target, targetUser, sock);
      // finished while dialling: finish() ran target?.end() before there was a target
      if (closing) {
        target.end();
        return;
      }
      target.on("error", (err) => deps.log("ssh: target error", { err: err.message, session: session?.id }));
      target.on("close", () => client.end());
      await session.audit({ type: "ssh.target", data: { target_user: targetUser, host: config.target.host } });
    } catch (err) {
      refusal =
        err instanceof TargetError || err instanceof TargetUnreachableError
          ? err.message
          : `target unavailable: ${String(err)}`;
      await session.audit({ type: "session.error", data: { reason: refusal } }).catch(() => undefined);
      await finish(err instanceof TargetError ? `target ${err.code}` : "target unavailable");
    }
  }

  /** Waits for the session and target; on refusal answers the channel with the reason on stderr. */
  async function usable(ch: ssh2.ServerChannel): Promise<{ session: GatedSession; target: ssh2.Client } | undefined> {
    await ready;
    if (session && target && !refusal) return { session, target };
    ch.stderr.write(`gatehouse: ${refusal ?? "session is not available"}\r\n`);
    ch.exit(1);
    ch.end();
    return undefined;
  }

  client.on("session", (accept) => {
    const channel = accept();
    let pty: Pty | undefined;
    let live: ssh2.ClientChannel | undefined;
    const env: Record<string, string> = {};
    const resize = (p: Pty) => {
      try {
        session?.recording.record("resize", { cols: p.cols, rows: p.rows });
      } catch {
        // recording full: the session is ended by the output path
      }
    };

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
      refusedForwarding("auth-agent", {});
    });
    channel.on("x11", (_acc, rej, x) => {
      rej?.();
      refusedForwarding("x11", { screen: x.screen, single: x.single });
    });
    channel.on("signal", (acc, _rej, s) => {
      live?.signal(s.name);
      acc?.();
    });

    channel.on("exec", (acc, _rej, e) => {
      const ch = fixWindowResume(acc());
      serveChannel(ch, async () => {
        const ok = await usable(ch);
        if (!ok) return;
        if (pty) resize(pty);
        const analysis = deps.analyzer.analyze(e.command);
        const verdict = await submit(ok.session, e.command, analysis.facts, { channel: "exec" }, ch);
        if (!verdict.forward) {
          ch.stderr.write(`gatehouse: ${verdict.message}\r\n`);
          ch.exit(EXIT_DENIED);
          ch.end();
          return;
        }
        ok.target.exec(e.command, { pty: pty ? ptyOptions(pty) : false, env }, (err, tch) => {
          if (err) return failChannel(ch, `target refused the command channel: ${err.message}`);
          live = tch;
          pipe(ok.session, ch, tch);
        });
      });
    });

    channel.on("shell", (acc) => {
      const ch = fixWindowResume(acc());
      serveChannel(ch, async () => {
        const ok = await usable(ch);
        if (!ok) return;
        if (pty) resize(pty);
        const input = new ShellInput({
          pty: pty !== undefined,
          analyze: (text) => deps.analyzer.analyze(text),
          submit: (text, facts) => submit(ok.session, text, facts, { channel: "shell" }, ch),
          toTarget: (b) => live?.write(b),
          toClient: (b) => ch.write(b),
          onError: (err) => {
            failChannel(ch, `shell input failed: ${err instanceof Error ? err.message : String(err)}`);
            live?.close();
          },
        });
        ok.target.shell(pty ? ptyOptions(pty) : false, { env }, (err, tch) => {
          if (err) return failChannel(ch, `target refused the shell: ${err.message}`);
          live = tch;
          pipe(ok.session, ch, tch, input);
        });
      });
    });

    channel.on("subsystem", (acc, rej, s) => {
      if (s.name !== "sftp") return rej?.();
      const ch = fixWindowResume(acc());
      serveChannel(ch, async () => {
        const ok = await usable(ch);
        if (!ok) return;
        const facts: RequestFacts = {
          statements: [],
          commands: [{ name: "sftp", argv: ["sftp"] }],
          pipelines: ["sftp"],
          apiCalls: [],
          httpCalls: [],
        };
        const verdict = await submit(ok.session, "sftp", facts, { channel: "subsystem" }, ch);
        if (!verdict.forward) {
          ch.stderr.write(`gatehouse: ${verdict.message}\r\n`);
          ch.exit(1);
          ch.end();
          return;
        }
        ok.target.subsys("sftp", (err, tch) => {
          if (err) return failChannel(ch, `target refused sftp: ${err.message}`);
          live = tch;
          sftp(ok.session, ch, tch);
        });
      });
    });
  });

  // port forwarding (-L, -R) and streamlocal are refused
  client.on("tcpip", (_acc, rej, t) => {
    rej();
    refusedForwarding("direct-tcpip", { dest: `${t.destIP}:${t.destPort}` });
  });
  client.on("openssh.streamlocal", (_acc, rej, t) => {
    rej();
    refusedForwarding("direct-streamlocal@openssh.com", { dest: t.socketPath });
  });
  client.on("request", (_acc, rej, name, info) => {
    rej?.();
    // ssh2 answers OpenSSH's routine no-more-sessions@openssh.com itself; should it ever reach us, it is no forwarding
    if ((name as string) === "no-more-sessions@openssh.com") return;
    refusedForwarding(name, forwardingListen(info));
  });

  client.on("error", (err) => deps.log("ssh: client connection error", { err: err.message, client: clientAddress }));
  client.on("close", () => {
    // stays tracked until its session has ended: the listener's close() must wait for that too
    finish("client disconnected")
      .finally(untrack)
      .catch((err: unknown) => deps.log("ssh: session did not end cleanly", { err: String(err) }));
  });

  /**
   * Records a forwarding request that was refused (nothing of it reaches the target). The refusal stands whether or
   * not its record can be written: a failing evidence store is logged here, it never ends the process.
   */
  function refusedForwarding(kind: string, data: Record<string, unknown>): void {
    const record = async () => {
      await ready;
      const s = session ?? (await opening);
      await s?.audit({ type: "ssh.forward.refused", data: { kind, ...data } });
    };
    record().catch((err: unknown) =>
      deps.log("ssh: a refused forwarding request could not be recorded", {
        kind,
        err: String(err),
        session: session?.id,
      }),
    );
  }

  /** Serves one session channel; an unexpected failure ends that channel with the cause, never the process. */
  function serveChannel(ch: ssh2.ServerChannel, serve: () => Promise<void>): void {
    serve().catch((err: unknown) => {
      deps.log("ssh: channel failed", { err: String(err), session: session?.id });
      failChannel(ch, `channel failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  function submit(
    s: GatedSession,
    text: string,
    facts: RequestFacts,
    data: Record<string, unknown>,
    ch: ssh2.ServerChannel,
  ): Promise<LineVerdict> {
    return s
      .admit({ text, facts, data, onHold: (n) => ch.stderr.write(`gatehouse: ${n.message}\r\n`) })
      .then((a) =>
        a.forward ? { forward: true } : { forward: false, message: `${a.kind.replace(/_/g, " ")}: ${a.message}` },
      );
  }

  function pipe(s: GatedSession, ch: ssh2.ServerChannel, tch: ssh2.ClientChannel, input?: ShellInput): void {
    const config = s.connection.config as SshConnectionConfig;
    const masker = deps.maskerFor(config);
    const tee = new RecordingTee(s.recording);
    let paused = 0;
    const pause = () => {
      if (paused++ === 0) tch.pause();
    };
    const resume = () => {
      if (--paused === 0) tch.resume();
    };
    let lost = false;
    // evidence cannot keep up or is gone (buffer full, or the store failed while output waited for it): end the
    // channel with the cause on stderr rather than show unrecorded output or leave the client hanging
    const recordingLost = (err: unknown) => {
      if (lost) return;
      lost = true;
      failChannel(ch, `evidence unavailable, session ended: ${err instanceof Error ? err.message : String(err)}`);
      tch.close();
    };
    const deliver = (stream: "stdout" | "stderr") => {
      const sink: NodeJS.WritableStream = stream === "stdout" ? ch : ch.stderr;
      // one pause (and one drain listener) per stream while it is full, however many writes it refuses meanwhile
      let full = false;
      return (bytes: Buffer) => {
        if (lost) return;
        if (!sink.write(bytes) && !full) {
          full = true;
          pause();
          sink.once("drain", () => {
            full = false;
            resume();
          });
        }
        try {
          if (!tee.record("output", bytes, stream)) {
            pause();
            s.recording.drain().then(resume, recordingLost);
          }
        } catch (err) {
          recordingLost(err);
        }
      };
    };
    const out = new OutputMasker(masker, deliver("stdout"));
    const err = new OutputMasker(masker, deliver("stderr"));
    tch.on("data", (b: Buffer) => {
      input?.observeOutput(b);
      out.write(b);
    });
    tch.stderr.on("data", (b: Buffer) => err.write(b));
    ch.on("data", (b: Buffer) => {
      try {
        tee.record("input", b);
      } catch {
        // input is also reflected in the requests' audit records
      }
      if (input) input.push(b);
      else tch.write(b);
    });
    ch.on("end", () => {
      if (input)
        input.end().then(
          () => tch.end(),
          () => tch.close(),
        );
      else tch.end();
    });
    tch.on("exit", (code: number | null, signal?: string) => {
      out.flush();
      err.flush();
      if (lost) return; // the client already has its exit status (1) and the reason
      if (signal) ch.exit(signal, false, "");
      else ch.exit(code ?? 0);
    });
    tch.on("close", () => {
      out.flush();
      err.flush();
      ch.end();
    });
    ch.on("close", () => tch.close());
  }

  function sftp(s: GatedSession, ch: ssh2.ServerChannel, tch: ssh2.ClientChannel): void {
    const observer = new SftpObserver({
      submit: (text, facts) => submit(s, text, facts, { channel: "sftp" }, ch),
      toTarget: (b) => tch.write(b),
      toClient: (b) => ch.write(b),
      onTransfer: (t) => {
        try {
          s.recording.record("result", { sftp: t.op, path: t.path, bytes_read: t.read, bytes_written: t.written });
        } catch {
          // the audit event below carries the same facts
        }
        s.audit({
          type: "sftp.transfer",
          data: { op: t.op, path: t.path, bytes_read: t.read, bytes_written: t.written },
        }).catch((err: unknown) => {
          // fail closed: no further transfer without its evidence
          deps.log("ssh: an sftp transfer could not be recorded", { err: String(err), session: s.id });
          failChannel(ch, `evidence unavailable, sftp ended: ${err instanceof Error ? err.message : String(err)}`);
          tch.close();
        });
      },
      onProtocolError: (message) => {
        deps.log("ssh: sftp stream", { message });
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
}

/** Where a tcpip-forward / streamlocal-forward request asked the gateway to listen. */
function forwardingListen(info: unknown): Record<string, unknown> {
  const i = (info ?? {}) as { bindAddr?: unknown; bindPort?: unknown; socketPath?: unknown };
  if (typeof i.socketPath === "string") return { listen: i.socketPath };
  if (typeof i.bindAddr === "string") return { listen: `${i.bindAddr}:${String(i.bindPort)}` };
  return {};
}

function ptyOptions(p: Pty): ssh2.PseudoTtyOptions {
  return { rows: p.rows, cols: p.cols, height: p.height, width: p.width, term: p.term };
}

/** Ends a channel with the reason on stderr and exit status 1, after the output it still has queued. */
function failChannel(ch: ssh2.ServerChannel, message: string): void {
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
