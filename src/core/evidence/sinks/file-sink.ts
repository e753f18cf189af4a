import { open, mkdir, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { AuditRecord } from "../audit-event.js";
import { canonicalJson } from "../canonical.js";
import type { AuditSink } from "./types.js";

const TAIL_BYTES = 1 << 20; // the last line of the file is found within this many bytes (records are small)

/**
 * Appends one canonical-JSON record per line (JSONL) and fsyncs once per batch. The line is the same canonical
 * encoding the hash is computed over (minus `hash` itself), so a reader can re-verify the chain from the file.
 */
export class FileSink implements AuditSink {
  readonly name: string;
  #fh: FileHandle | undefined;

  constructor(readonly path: string) {
    this.name = `file:${path}`;
  }

  async deliver(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    const fh = await this.#open();
    const text = records.map((r) => canonicalJson(r) + "\n").join("");
    await fh.appendFile(text, "utf8");
    await fh.sync();
  }

  async lastDeliveredSeq(): Promise<number | undefined> {
    const fh = await this.#open();
    const { size } = await fh.stat();
    if (size === 0) return undefined;
    const len = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    // A crash may leave a torn last line: take the last line that parses.
    const lines = buf.toString("utf8").split("\n").reverse();
    for (const line of lines) {
      try {
        const seq = (JSON.parse(line) as { seq?: unknown }).seq;
        if (typeof seq === "number") return seq;
      } catch {
        // torn or partial line
      }
    }
    return undefined;
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }

  async #open(): Promise<FileHandle> {
    if (!this.#fh) {
      await mkdir(dirname(this.path), { recursive: true });
      this.#fh = await open(this.path, "a+", 0o640);
    }
    return this.#fh;
  }
}
