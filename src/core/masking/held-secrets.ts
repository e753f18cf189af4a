/**
 * The target credentials a connection holds (its token, password, header values), scrubbed from everything the
 * target sends back: a target that echoes a request's headers (a debug endpoint, an error page quoting the request)
 * must not hand the client, or the recording, the credential kept from both. One implementation for both holders:
 * the gateway's HTTP adapter (`secrets: gateway`) and the network agent that adds the credential itself
 * (`secrets: agent`, which scrubs before anything crosses the tunnel).
 */
export const HELD_SECRET_MASK = "********";

/** Secrets shorter than this are not scrubbed: they would match ordinary text (and are not credentials). */
const MIN_SECRET_LENGTH = 8;

export class HeldSecrets {
  readonly #secrets: Buffer[];
  readonly #longest: number;

  constructor(values: readonly string[]) {
    const unique = [...new Set(values.filter((v) => v.length >= MIN_SECRET_LENGTH))];
    // longest first, so a secret containing another is replaced whole
    this.#secrets = unique.sort((a, b) => b.length - a.length).map((v) => Buffer.from(v));
    this.#longest = Math.max(0, ...this.#secrets.map((s) => s.length));
  }

  get empty(): boolean {
    return this.#secrets.length === 0;
  }

  /** Response headers with every held credential replaced (a target may echo one in a header too). */
  scrubHeaders<T extends Record<string, number | string | string[] | undefined>>(headers: T): T {
    if (this.empty) return headers;
    const out: Record<string, number | string | string[] | undefined> = {};
    const clean = (v: string) =>
      this.#secrets.some((s) => v.includes(s.toString())) ? this.scrub(Buffer.from(v)).toString() : v;
    for (const [name, value] of Object.entries(headers))
      out[name] = typeof value === "string" ? clean(value) : Array.isArray(value) ? value.map(clean) : value;
    return out as T;
  }

  /** Every occurrence in a whole body replaced. */
  scrub(bytes: Buffer): Buffer {
    let out = bytes;
    for (const secret of this.#secrets) {
      if (out.indexOf(secret) < 0) continue;
      const parts: Buffer[] = [];
      let from = 0;
      for (let at = out.indexOf(secret); at >= 0; at = out.indexOf(secret, from)) {
        parts.push(out.subarray(from, at), Buffer.from(HELD_SECRET_MASK));
        from = at + secret.length;
      }
      parts.push(out.subarray(from));
      out = Buffer.concat(parts);
    }
    return out;
  }

  /**
   * A scrubber for a stream. It holds back only a tail that is the beginning of a secret (which may continue in the
   * next chunk), so ordinary streamed text is never delayed.
   */
  stream(emit: (bytes: Buffer) => void): { write(chunk: Buffer): void; end(): void } {
    let held = Buffer.alloc(0);
    return {
      write: (chunk) => {
        const data = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
        const scrubbed = this.scrub(data);
        const cut = scrubbed.length - this.#partialTail(scrubbed);
        held = Buffer.from(scrubbed.subarray(cut));
        if (cut > 0) emit(scrubbed.subarray(0, cut));
      },
      end: () => {
        if (held.length > 0) emit(this.scrub(held));
        held = Buffer.alloc(0);
      },
    };
  }

  /** Length of the longest tail of `bytes` that a secret begins with (and that is not the whole secret). */
  #partialTail(bytes: Buffer): number {
    const max = Math.min(bytes.length, this.#longest - 1);
    for (let n = max; n > 0; n--) {
      const tail = bytes.subarray(bytes.length - n);
      if (this.#secrets.some((s) => s.length > n && s.subarray(0, n).equals(tail))) return n;
    }
    return 0;
  }
}
