import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { MessageBuffer, type Frame } from "./framing.js";
import { MAX_CLIENT_MESSAGE } from "./wire.js";

/** Pause reading the client when this much of its pipeline waits behind a decision. */
const QUEUE_HIGH_WATER = 8 * 1024 * 1024;

/** Why reading the client is paused; it resumes when no reason is left. */
const PAUSED_QUEUE = 1;
const PAUSED_TARGET = 2;
const PAUSED_RECORDER = 4;

/**
 * Flow control of the client's side of a session: its bytes cut into frames that wait their turn behind a decision,
 * what was let through written to the target in batches, and when to stop reading the client (too much queued, a
 * target that does not keep up, a recorder behind). A client that pipelines faster than requests are decided is
 * slowed down, never buffered without bound, and no evidence is dropped for a full buffer. It decides nothing.
 */
export class ClientFlow {
  readonly #client: Socket | TLSSocket;
  readonly #target: Duplex;
  readonly #onRecordingUnavailable: (err: unknown) => void;
  readonly #buffer = new MessageBuffer();
  readonly #frames: Frame[] = [];
  #queuedBytes = 0;
  /** Let through, not yet written to the target. */
  readonly #out: Buffer[] = [];
  /** PAUSED_* bits: why the client socket is not being read. */
  #pausedBy = 0;
  #closed = false;

  constructor(client: Socket | TLSSocket, target: Duplex, onRecordingUnavailable: (err: unknown) => void) {
    this.#client = client;
    this.#target = target;
    this.#onRecordingUnavailable = onRecordingUnavailable;
  }

  /** Nothing more of the client is read or forwarded. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Queues the complete frames `chunk` finishes; throws ProtocolError. Too much queued pauses the client. */
  receive(chunk: Buffer): void {
    this.#buffer.push(chunk);
    for (let f = this.#buffer.nextTyped(MAX_CLIENT_MESSAGE); f; f = this.#buffer.nextTyped(MAX_CLIENT_MESSAGE)) {
      this.#frames.push(f);
      this.#queuedBytes += f.raw.length;
    }
    if (this.#queuedBytes > QUEUE_HIGH_WATER) this.#pause(PAUSED_QUEUE);
  }

  /** The next queued frame, in the client's order. */
  next(): Frame | undefined {
    const frame = this.#frames.shift();
    if (frame !== undefined) this.#queuedBytes -= frame.raw.length;
    return frame;
  }

  /** The queue was worked through as far as it could be: reading resumes once half of the high-water mark is left. */
  caughtUp(): void {
    if (this.#queuedBytes < QUEUE_HIGH_WATER / 2) this.#unpause(PAUSED_QUEUE);
  }

  /** Lets a message through to the target, with the next flush. */
  send(raw: Buffer): void {
    this.#out.push(raw);
  }

  /** Writes what was let through; a target that does not keep up pauses the client until it drained. */
  flush(): void {
    const out = this.#out;
    if (out.length === 0) return;
    const target = this.#target;
    let ok: boolean;
    if (out.length === 1) ok = target.write(out[0] as Buffer);
    else ok = target.write(Buffer.concat(out));
    out.length = 0;
    if (!ok && (this.#pausedBy & PAUSED_TARGET) === 0) {
      this.#pause(PAUSED_TARGET);
      target.once("drain", () => this.#unpause(PAUSED_TARGET));
    }
  }

  /**
   * The recorder holds more than its high-water mark: what was admitted goes to the target, then the client is
   * not read (and nothing more is recorded for it) until the recorder has written its backlog, so no event of
   * this session is ever dropped for a full buffer. If the recorder's store fails meanwhile the session ends
   * rather than hang (the client stays paused: nothing more of it is read unrecorded).
   */
  async waitForRecorder(recording: { drain(): Promise<void> }): Promise<void> {
    this.flush();
    this.#pause(PAUSED_RECORDER);
    try {
      await recording.drain();
    } catch (err) {
      this.stop();
      this.#onRecordingUnavailable(err);
      return;
    }
    this.#unpause(PAUSED_RECORDER);
  }

  /** The session is closing: nothing more is read or forwarded; what is queued stays unread. */
  close(): void {
    this.#closed = true;
  }

  /** Reads and forwards nothing more; what is queued is dropped (the session is ending). */
  stop(): void {
    this.#closed = true;
    this.#frames.length = 0;
  }

  #pause(reason: number): void {
    if (this.#pausedBy === 0) this.#client.pause();
    this.#pausedBy |= reason;
  }

  #unpause(reason: number): void {
    if ((this.#pausedBy & reason) === 0) return;
    this.#pausedBy &= ~reason;
    if (this.#pausedBy === 0 && !this.#closed) this.#client.resume();
  }
}
