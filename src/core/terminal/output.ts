import { StringDecoder } from "node:string_decoder";
import type { Masker } from "../masking/index.js";
import type { SessionRecording } from "../evidence/recorder.js";

/** How long a partial line (a prompt, a progress bar) waits for its newline before it is masked and sent. */
export const PARTIAL_LINE_FLUSH_MS = 25;
/** A "line" longer than this is masked and sent without waiting for its newline (bounded memory). */
export const MAX_HELD_LINE_BYTES = 64 * 1024;

/**
 * Masks terminal output at line boundaries: complete lines are scanned as soon as they arrive, and the partial
 * line at the end of a chunk is held (up to PARTIAL_LINE_FLUSH_MS or MAX_HELD_LINE_BYTES) so a secret split across
 * two reads is still one string to the detectors. Without detectors bytes pass through untouched.
 */
export class OutputMasker {
  #held: Buffer = Buffer.alloc(0);
  #timer: NodeJS.Timeout | undefined;
  #hits = 0;

  constructor(
    private readonly masker: Masker | undefined,
    private readonly emit: (bytes: Buffer) => void,
  ) {}

  get hits(): number {
    return this.#hits;
  }

  write(chunk: Buffer): void {
    if (!this.masker?.hasDetectors) return this.emit(chunk);
    const data = this.#held.length > 0 ? Buffer.concat([this.#held, chunk]) : chunk;
    const nl = data.lastIndexOf(0x0a);
    if (nl >= 0) this.#send(data.subarray(0, nl + 1));
    this.#held = Buffer.from(data.subarray(nl + 1));
    if (this.#held.length >= MAX_HELD_LINE_BYTES) this.flush();
    else if (this.#held.length > 0) this.#timer ??= setTimeout(() => this.flush(), PARTIAL_LINE_FLUSH_MS);
  }

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const held = this.#held;
    this.#held = Buffer.alloc(0);
    if (held.length > 0) this.#send(held);
  }

  #send(bytes: Buffer): void {
    const masked = this.masker?.maskBytes(bytes);
    if (masked) this.#hits += masked.hits.length;
    this.emit(masked ? masked.bytes : bytes);
  }
}

/**
 * Tees a terminal's bytes into the recording: what the client is sent (already masked) as `output` events, what it
 * types as `input` events. UTF-8 is decoded per stream (stdout, stderr, input) so a character split across chunks
 * is recorded whole.
 */
export class RecordingTee {
  readonly #decoders = new Map<string, StringDecoder>();

  constructor(private readonly recording: SessionRecording) {}

  /** Returns false when the recorder wants the producer to pause (await recording.drain()). */
  record(kind: "output" | "input", bytes: Buffer, stream = "stdout"): boolean {
    const key = `${kind}:${stream}`;
    let decoder = this.#decoders.get(key);
    if (!decoder) {
      decoder = new StringDecoder("utf8");
      this.#decoders.set(key, decoder);
    }
    const data = decoder.write(bytes);
    if (data.length === 0) return true;
    return this.recording.record(kind, stream === "stdout" ? { data } : { data, stream });
  }
}
