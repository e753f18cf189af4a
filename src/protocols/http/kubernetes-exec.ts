import WebSocket, { type RawData } from "ws";
import { errorText } from "../../core/adapter/index.js";
import type { ShellAnalyzer } from "../../core/inspect/shell/index.js";
import type { ApiCallFact } from "../../core/policy/facts.js";
import { OutputMasker, readsCommandsFromStdin, RecordingTee, ShellInput } from "../../core/terminal/index.js";
import type { Prepared } from "./exchange.js";
import { record, relayMessages, toBuffer, validCloseCode, type WebSocketRelay } from "./upgrade.js";
import { recordRelayed, WsFlow } from "./ws-flow.js";

// The streams of the Kubernetes remote command protocol: each binary message starts with its channel.
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
/** The command's outcome, a Status object (exit code, or the error that stopped it). */
const STATUS = 3;
/** Terminal size, JSON {"Width","Height"}. */
const RESIZE = 4;
/** v5: the sender closed one of its streams (the payload names which). */
const CLOSE = 255;

/**
 * exec and attach over WebSocket (`v5.channel.k8s.io`, v4 and older channel protocols) as terminal sessions, like
 * SSH's: what the target prints is masked line by line and recorded (asciicast replay), what the client types is
 * recorded, and when the command is a shell (or an attach), each line typed is admitted before its Enter reaches
 * the target, with the exec's API call as its place (`within`), so rules on commands in a namespace apply.
 */
export function kubernetesTerminalRelay(p: Prepared, analyzer: ShellAnalyzer): WebSocketRelay | undefined {
  const call = p.facts.apiCalls[0];
  if (!call || (call.verb !== "exec" && call.verb !== "attach")) return undefined;
  return (prepared, client, target) => {
    if (!/^(?:v\d+\.)?channel\.k8s\.io$/.test(target.protocol)) {
      // the base64 variants (text frames) and unknown ones: the gateway could not mask or follow them
      if (target.protocol === "") return relayMessages(prepared, client, target);
      client.close(1008, "gatehouse: this exec stream protocol is not supported");
      target.close(1000);
      return Promise.resolve();
    }
    return new TerminalRelay(prepared, call, analyzer, client, target).done;
  };
}

class TerminalRelay {
  readonly done: Promise<void>;
  readonly #tee: RecordingTee;
  readonly #out: OutputMasker;
  readonly #err: OutputMasker;
  readonly #input: ShellInput | undefined;
  /** What the client sends, towards the target; what the target sends, towards the client. */
  readonly #up: WsFlow;
  readonly #down: WsFlow;
  #failed = false;

  constructor(
    private readonly p: Prepared,
    call: ApiCallFact,
    analyzer: ShellAnalyzer,
    private readonly client: WebSocket,
    private readonly target: WebSocket,
  ) {
    const query = new URLSearchParams(p.path.includes("?") ? p.path.slice(p.path.indexOf("?") + 1) : "");
    const flag = (name: string) => ["true", "1"].includes(query.get(name) ?? "");
    const tty = flag("tty");
    this.#tee = new RecordingTee(p.session.recording);
    this.#up = new WsFlow(client);
    this.#down = new WsFlow(target);
    const masker = p.masking.text;
    this.#out = new OutputMasker(masker, (b) => this.#toClient(STDOUT, p.target.held.scrub(b), "stdout"));
    this.#err = new OutputMasker(masker, (b) => this.#toClient(STDERR, p.target.held.scrub(b), "stderr"));
    // a shell reading its commands from stdin (`sh`, `sh -c sh`), or an attach: typed lines are judged one by one
    const lines = flag("stdin") && (call.verb === "attach" || readsCommandsFromStdin(p.facts.commands));
    this.#input = lines
      ? new ShellInput({
          pty: tty,
          analyze: (text) => analyzer.analyze(text),
          submit: async (text, facts) => {
            const admission = await p.session.admit({
              text,
              facts: { ...facts, within: [call] },
              data: { channel: "stdin", in: `${call.verb} ${call.namespace ?? ""}/${call.name ?? ""}` },
            });
            return admission.forward ? { forward: true } : { forward: false, message: admission.message };
          },
          toTarget: (b) => this.#up.send(target, frame(STDIN, b), true),
          toClient: (b) => this.#down.send(client, frame(STDOUT, b), true),
          onError: (err) => this.#fail(`terminal input failed: ${errorText(err)}`),
        })
      : undefined;

    this.done = new Promise((resolve) => {
      let open = 2;
      const closed = (other: WebSocket) => (code: number, reason: Buffer) => {
        this.#out.flush();
        this.#err.flush();
        if (other.readyState === WebSocket.OPEN) other.close(validCloseCode(code), reason);
        if (--open === 0) resolve();
      };
      client.once("close", closed(target));
      target.once("close", closed(client));
      client.once("error", () => target.terminate());
      target.once("error", () => client.terminate());
    });
    client.on("message", (data: RawData) => this.#fromClient(toBuffer(data)));
    target.on("message", (data: RawData) => this.#fromTarget(toBuffer(data)));
  }

  #fromClient(msg: Buffer): void {
    if (this.#failed || msg.length === 0) return;
    const channel = msg[0] as number;
    const payload = msg.subarray(1);
    if (channel === STDIN) {
      try {
        this.#tee.record("input", payload);
      } catch {
        // the typed lines' audit records carry them too
      }
      if (this.#input) this.#input.push(payload);
      else this.#up.send(this.target, msg, true);
      return;
    }
    if (channel === RESIZE) {
      try {
        const size = JSON.parse(payload.toString("utf8")) as { Width?: number; Height?: number };
        record(this.p.session, "resize", { cols: size.Width, rows: size.Height });
      } catch {
        // forwarded as sent; the target judges it
      }
    }
    if (channel === CLOSE && payload[0] === STDIN && this.#input) {
      // the client's stdin ended: its last line is judged before the target hears of the end
      this.#input.end().then(
        () => this.#up.send(this.target, msg, true),
        () => this.target.close(1000),
      );
      return;
    }
    this.#up.send(this.target, msg, true);
  }

  #fromTarget(msg: Buffer): void {
    if (this.#failed || msg.length === 0) return;
    const channel = msg[0] as number;
    const payload = msg.subarray(1);
    if (channel === STDOUT) {
      this.#input?.observeOutput(payload);
      this.#out.write(payload);
      return;
    }
    if (channel === STDERR) {
      this.#err.write(payload);
      return;
    }
    // what follows output must follow it on the wire too
    this.#out.flush();
    this.#err.flush();
    if (channel === STATUS) record(this.p.session, "notice", { status: payload.toString("utf8").slice(0, 4096) });
    this.#down.send(this.client, msg, true);
  }

  #toClient(channel: number, bytes: Buffer, stream: "stdout" | "stderr"): void {
    const lost = (err: unknown) => this.#fail(`evidence unavailable, session ended: ${errorText(err)}`);
    // a recorder that is behind holds the target; one that failed ends the session (no unrecorded output is shown)
    const recording = this.p.session.recording;
    if (!recordRelayed(() => this.#tee.record("output", bytes, stream), recording, this.#down, lost)) return;
    this.#down.send(this.client, frame(channel, bytes), true);
  }

  #fail(message: string): void {
    if (this.#failed) return;
    this.#down.send(this.client, frame(STDERR, Buffer.from(`\r\ngatehouse: ${message}\r\n`)), true);
    this.#failed = true;
    record(this.p.session, "notice", { refused: message });
    this.client.close(1011, "gatehouse: session ended");
    this.target.close(1000);
  }
}

function frame(channel: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([channel]), bytes]);
}
