import type ssh2 from "ssh2";
import type { Masker } from "../../core/masking/index.js";
import type { GatedSession } from "../../core/session/gate.js";
import { OutputMasker, RecordingTee, type ShellInput } from "../../core/terminal/index.js";
import { endChannel, errorText, failChannel } from "./channel.js";

/**
 * The bytes of one exec or shell channel, both ways, between the client's channel and the target's. The target's
 * stdout and stderr reach the client masked and teed into the recording; the client's input is recorded and goes
 * to the target through the shell's line handling (`input`, which admits each line) or, for an exec, as it is.
 *
 * Flow control: the target channel is paused while the client's channel is full or the recorder asks producers to
 * wait, and resumed once neither holds it. When evidence is lost (recorder full, its store failed) the channel ends
 * with the cause on stderr: no unrecorded output is shown, and the client is not left hanging.
 */
export class ChannelPipe {
  readonly #tee: RecordingTee;
  /** How many reasons currently hold the target channel paused (a full stream, the recorder). */
  #paused = 0;
  #lost = false;

  constructor(
    private readonly session: GatedSession,
    private readonly ch: ssh2.ServerChannel,
    private readonly tch: ssh2.ClientChannel,
    masker: Masker | undefined,
    input?: ShellInput,
  ) {
    this.#tee = new RecordingTee(session.recording);
    const out = new OutputMasker(masker, this.#deliver("stdout"));
    const err = new OutputMasker(masker, this.#deliver("stderr"));
    tch.on("data", (b: Buffer) => {
      input?.observeOutput(b);
      out.write(b);
    });
    tch.stderr.on("data", (b: Buffer) => err.write(b));
    ch.on("data", (b: Buffer) => {
      try {
        this.#tee.record("input", b);
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
      if (this.#lost) return; // the client already has its exit status (1) and the reason
      if (signal) ch.exit(signal, false, "");
      else ch.exit(code ?? 0);
    });
    // The target's channel can close while its streams, paused for a slow client, still hold output: the client's
    // channel ends only once both have delivered everything (their "end"), or the tail of the output would be lost.
    const drained = Promise.all([streamEnded(tch), streamEnded(tch.stderr)]);
    const finish = () => {
      out.flush();
      err.flush();
      endChannel(ch);
    };
    tch.on("close", () => {
      drained.then(finish, finish);
    });
    ch.on("close", () => tch.close());
  }

  // Both target streams: they share one SSH window, so a stderr still read would keep the target sending.
  #pause(): void {
    if (this.#paused++ > 0) return;
    this.tch.pause();
    this.tch.stderr.pause();
  }

  #resume(): void {
    if (--this.#paused > 0) return;
    this.tch.resume();
    this.tch.stderr.resume();
  }

  /** Evidence cannot keep up or is gone (buffer full, or the store failed while output waited for it). */
  #recordingLost(err: unknown): void {
    if (this.#lost) return;
    this.#lost = true;
    failChannel(this.ch, `evidence unavailable, session ended: ${errorText(err)}`);
    this.tch.close();
  }

  /** Masked output of one stream: to the client's stream of the same name, and into the recording. */
  #deliver(stream: "stdout" | "stderr"): (bytes: Buffer) => void {
    const sink: NodeJS.WritableStream = stream === "stdout" ? this.ch : this.ch.stderr;
    // one pause (and one drain listener) per stream while it is full, however many writes it refuses meanwhile
    let full = false;
    return (bytes: Buffer) => {
      if (this.#lost) return;
      if (!sink.write(bytes) && !full) {
        full = true;
        this.#pause();
        sink.once("drain", () => {
          full = false;
          this.#resume();
        });
      }
      try {
        if (!this.#tee.record("output", bytes, stream)) {
          this.#pause();
          this.session.recording.drain().then(
            () => this.#resume(),
            (err: unknown) => this.#recordingLost(err),
          );
        }
      } catch (err) {
        this.#recordingLost(err);
      }
    };
  }
}

/** Resolves once a readable stream has emitted all its data ("end"), or was destroyed without it ("close"). */
function streamEnded(stream: NodeJS.ReadableStream & { readableEnded?: boolean }): Promise<void> {
  if (stream.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once("end", () => resolve());
    stream.once("close", () => resolve());
  });
}
