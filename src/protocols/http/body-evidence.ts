import { createHash, hash, type Hash } from "node:crypto";

/**
 * What the recording keeps of one body: its size and SHA-256 always, and its first `limit` bytes (the connection's
 * `record_body_bytes`). Fed the bytes exactly as they travelled (a response after masking).
 */
export class BodyEvidence {
  #head: Buffer[] = [];
  #headBytes = 0;
  #total = 0;
  /** Made once the body outgrows its head: most bodies are small, and one-shot hashing is cheaper. */
  #hash: Hash | undefined;

  constructor(private readonly limit: number) {}

  get bytes(): number {
    return this.#total;
  }

  add(chunk: Buffer): void {
    this.#total += chunk.length;
    let inHead = 0;
    if (this.#headBytes < this.limit) {
      const part = chunk.subarray(0, this.limit - this.#headBytes);
      this.#head.push(part);
      this.#headBytes += part.length;
      inHead = part.length;
    }
    // still all in the head: hashed in one go at the end
    if (this.#total <= this.limit) return;
    if (!this.#hash) {
      this.#hash = createHash("sha256");
      for (const part of this.#head) this.#hash.update(part);
    }
    this.#hash.update(chunk.subarray(inHead));
  }

  /** The body's first `limit` bytes. */
  head(): Buffer {
    return Buffer.concat(this.#head);
  }

  /** Whether head() is the whole body. */
  get complete(): boolean {
    return this.#total === this.#headBytes;
  }

  /**
   * For the recording, once the body ended: size and hash, and `content` (default: the head as it travelled), or
   * nothing more when `content` is null (what travelled could not be made safe to keep).
   */
  summary(content: Buffer | null = this.head()): Record<string, unknown> {
    const sha256 = this.#hash ? this.#hash.digest("hex") : hash("sha256", this.head(), "hex");
    const out: Record<string, unknown> = { bytes: this.#total, sha256 };
    if (content === null || content.length === 0) return out;
    Object.assign(out, bodyContent(content));
    if (!this.complete) out.truncated = true;
    return out;
  }
}

/** A body as recorded: text when it is UTF-8, base64 otherwise. */
export function bodyContent(bytes: Buffer): { body: string } | { body_base64: string } {
  const text = bytes.toString("utf8");
  // a replacement character that was not in the input means the bytes were not UTF-8
  if (!text.includes("\uFFFD") || bytes.includes(Buffer.from("\uFFFD"))) return { body: text };
  return { body_base64: bytes.toString("base64") };
}
