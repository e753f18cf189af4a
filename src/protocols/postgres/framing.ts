/**
 * Message framing for both directions. A message is either typed (1 type byte + int32 length including itself)
 * or, during startup, untyped (int32 length + int32 code). Chunks are kept as a list so a large message is
 * copied once when complete, never re-concatenated per chunk.
 */

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

export interface Frame {
  /** The type byte as a character ('Q', 'P', ...). */
  type: string;
  /** The whole message, header included (what is forwarded byte for byte). */
  raw: Buffer;
}

export function bodyOf(frame: Frame): Buffer {
  return frame.raw.subarray(5);
}

export class MessageBuffer {
  #chunks: Buffer[] = [];
  #total = 0;

  get length(): number {
    return this.#total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#total += chunk.length;
  }

  /** The next complete typed message, or undefined until more bytes arrive. Throws ProtocolError. */
  nextTyped(maxLength: number): Frame | undefined {
    if (this.#total < 5) return undefined;
    const head = this.#head(5);
    const len = head.readInt32BE(1);
    if (len < 4) throw new ProtocolError(`invalid message length ${len}`);
    if (len + 1 > maxLength) throw new ProtocolError(`message of ${len + 1} bytes exceeds the limit of ${maxLength}`);
    if (this.#total < len + 1) return undefined;
    const raw = this.take(len + 1);
    return { type: String.fromCharCode(raw[0] as number), raw };
  }

  /** The next complete startup-phase message (length + code + body), or undefined. Throws ProtocolError. */
  nextUntyped(maxLength: number): { code: number; raw: Buffer } | undefined {
    if (this.#total < 8) return undefined;
    const head = this.#head(8);
    const len = head.readInt32BE(0);
    if (len < 8) throw new ProtocolError(`invalid startup message length ${len}`);
    if (len > maxLength) throw new ProtocolError(`startup message of ${len} bytes exceeds the limit of ${maxLength}`);
    if (this.#total < len) return undefined;
    const raw = this.take(len);
    return { code: raw.readInt32BE(4), raw };
  }

  /** Removes and returns exactly n bytes (n <= length). */
  take(n: number): Buffer {
    const first = this.#chunks[0] as Buffer;
    this.#total -= n;
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0] as Buffer;
      const part = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, part);
      filled += part;
      if (part === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(part);
    }
    return out;
  }

  /** Everything still buffered, as one buffer (used to hand leftover bytes to the next stage). */
  takeAll(): Buffer {
    return this.#total === 0 ? Buffer.alloc(0) : this.take(this.#total);
  }

  /** The first n buffered bytes without consuming them (merging the first chunks if they are tiny). */
  #head(n: number): Buffer {
    let first = this.#chunks[0] as Buffer;
    if (first.length < n) {
      first = Buffer.concat(this.#chunks);
      this.#chunks = [first];
    }
    return first;
  }
}

/**
 * Reads messages from a socket one at a time, for the startup phases (client handshake, target login), where
 * the exchange is strictly request/response. `detach()` hands over the socket and any bytes read past the end.
 */
export class MessageReader {
  readonly #buffer = new MessageBuffer();
  #waiter: (() => void) | undefined;
  #ended: Error | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#buffer.push(chunk);
    this.#wake();
  };
  readonly #onEnd = () => {
    this.#ended ??= new ProtocolError("connection closed during startup");
    this.#wake();
  };
  readonly #onError = (err: Error) => {
    this.#ended ??= err;
    this.#wake();
  };

  constructor(
    private readonly socket: NodeJS.ReadableStream & NodeJS.EventEmitter,
    initial?: Buffer,
  ) {
    if (initial) this.#buffer.push(initial);
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onEnd);
    socket.on("error", this.#onError);
    // a socket paused by a previous reader's detach() does not start flowing again by itself
    socket.resume();
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  async typed(maxLength: number): Promise<Frame> {
    return this.#next(() => this.#buffer.nextTyped(maxLength));
  }

  async untyped(maxLength: number): Promise<{ code: number; raw: Buffer }> {
    return this.#next(() => this.#buffer.nextUntyped(maxLength));
  }

  /** Reads exactly n bytes (the one-byte SSLRequest answer). */
  async bytes(n: number): Promise<Buffer> {
    return this.#next(() => (this.#buffer.length >= n ? this.#buffer.take(n) : undefined));
  }

  /** Stops listening and pauses the socket (the next owner resumes it); returns bytes read but not consumed. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.off("data", this.#onData);
    this.socket.off("end", this.#onEnd);
    this.socket.off("close", this.#onEnd);
    this.socket.off("error", this.#onError);
    return this.#buffer.takeAll();
  }

  async #next<T>(attempt: () => T | undefined): Promise<T> {
    for (;;) {
      const value = attempt();
      if (value !== undefined) return value;
      if (this.#ended) throw this.#ended;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}
