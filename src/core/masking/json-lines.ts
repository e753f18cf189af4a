import { maskDocumentText, type DocumentMask } from "./json-mask.js";

export class JsonLinesError extends Error {
  override name = "JsonLinesError";
}

const NL = 0x0a;
const CR = 0x0d;

/**
 * Masks a newline-delimited JSON stream (a Kubernetes watch, JSON lines) one document per line: each complete line
 * is masked as one JSON document and emitted with its newline; a partial line is held until its newline arrives.
 * What comes out does not depend on how the input was cut into chunks.
 *
 * Fails closed: a line longer than maxLineBytes (checked as soon as the held part exceeds it, so memory stays
 * bounded) or a line that is not JSON makes write()/end() throw JsonLinesError, after emitting the lines before it and
 * nothing of it;
 * every later call throws too. The caller must then end the client's response without passing anything further.
 * An exception from `mask` is handled the same way (and rethrown as it is).
 */
export class JsonLinesMasker {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private failure: Error | undefined;

  constructor(
    private readonly mask: DocumentMask,
    private readonly emit: (buf: Buffer) => void,
    private readonly maxLineBytes: number,
  ) {}

  /** Masks every line the chunk completes and emits them together (one emit per chunk, none if no line ended). */
  write(chunk: Buffer): void {
    this.check();
    const out: Buffer[] = [];
    try {
      let from = 0;
      for (let nl = chunk.indexOf(NL); nl !== -1; nl = chunk.indexOf(NL, from)) {
        const part = chunk.subarray(from, nl);
        const line = this.held.length > 0 ? Buffer.concat([...this.held, part]) : part;
        this.held = [];
        this.heldBytes = 0;
        out.push(this.line(line, true));
        from = nl + 1;
      }
      if (from < chunk.length) this.hold(chunk.subarray(from));
    } catch (err) {
      // the lines before the bad one are out either way, however the stream was cut
      if (out.length > 0) this.emit(Buffer.concat(out));
      throw this.fail(err);
    }
    if (out.length > 0) this.emit(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
  }

  /** The last line, when the stream does not end with a newline, is masked and emitted without one. */
  end(): void {
    this.check();
    if (this.held.length === 0) return;
    let last: Buffer;
    try {
      last = this.line(Buffer.concat(this.held), false);
    } catch (err) {
      throw this.fail(err);
    }
    this.held = [];
    this.heldBytes = 0;
    this.emit(last);
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private fail(err: unknown): Error {
    this.held = [];
    this.heldBytes = 0;
    this.failure = err instanceof Error ? err : new JsonLinesError(String(err));
    return this.failure;
  }

  private hold(part: Buffer): void {
    this.heldBytes += part.length;
    if (this.heldBytes > this.maxLineBytes)
      throw new JsonLinesError(`a JSON line exceeds ${this.maxLineBytes} bytes before its end: not passed unmasked`);
    // a chunk's tail is copied: the caller may reuse its buffer once write() returns
    this.held.push(Buffer.from(part));
  }

  private line(line: Buffer, newline: boolean): Buffer {
    if (line.length > this.maxLineBytes)
      throw new JsonLinesError(`a JSON line of ${line.length} bytes exceeds ${this.maxLineBytes}: not passed unmasked`);
    const cr = line.length > 0 && line[line.length - 1] === CR;
    const body = cr ? line.subarray(0, -1) : line;
    const ending = `${cr ? "\r" : ""}${newline ? "\n" : ""}`;
    // a blank line (a keep-alive) has nothing to mask
    if (/^[ \t]*$/.test(body.toString("latin1"))) return Buffer.concat([line, Buffer.from(newline ? "\n" : "")]);
    const text = body.toString("utf8");
    const r = maskDocumentText(text, this.mask);
    if (!r) throw new JsonLinesError("a line of the JSON stream is not JSON: not passed unmasked");
    if (r.text === text) return Buffer.concat([line, Buffer.from(newline ? "\n" : "")]);
    return Buffer.from(r.text + ending);
  }
}
