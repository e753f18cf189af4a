import type { RequestFacts } from "../../core/policy/facts.js";
import { emptyFacts } from "../../core/policy/facts.js";
import type { LineVerdict } from "../../core/terminal/index.js";

/**
 * Watches an SFTP (v3) stream passing through: each operation that names a path (open, remove, rename, mkdir,
 * rmdir, setstat, symlink) is submitted as a request before it is forwarded, and a refused one is answered in SFTP
 * itself (SSH_FX_PERMISSION_DENIED with the reason). Bytes read and written are counted per handle and reported
 * when the handle closes. Reads and writes themselves pass without a round trip to the policy.
 */
const FXP = {
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  SETSTAT: 9,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  RENAME: 18,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
} as const;
const FX_PERMISSION_DENIED = 3;
const PFLAG_WRITE = 0x2;
/** OpenSSH caps packets at 256 KiB; anything far larger is not SFTP. */
const MAX_PACKET = 1024 * 1024;

export interface SftpTransfer {
  op: "put" | "get";
  path: string;
  read: number;
  written: number;
}

export interface SftpObserverOptions {
  submit(text: string, facts: RequestFacts): Promise<LineVerdict>;
  toTarget(bytes: Buffer): void;
  toClient(bytes: Buffer): void;
  onTransfer(transfer: SftpTransfer): void;
  onProtocolError(message: string): void;
}

/** An sftp request as policy sees it: the command `sftp OP PATH...` (the subsystem itself: `sftp`). */
export function sftpFacts(argv: string[]): RequestFacts {
  const facts = emptyFacts();
  facts.commands = [{ name: "sftp", argv }];
  facts.pipelines = [argv.join(" ")];
  return facts;
}

function readString(buf: Buffer, at: number): [Buffer, number] {
  if (at + 4 > buf.length) throw new Error("truncated");
  const n = buf.readUInt32BE(at);
  if (at + 4 + n > buf.length) throw new Error("truncated");
  return [buf.subarray(at + 4, at + 4 + n), at + 4 + n];
}

function packet(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1);
  head[4] = type;
  return Buffer.concat([head, body]);
}

function str(s: string): Buffer {
  const b = Buffer.from(s);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** Splits a byte stream into whole SFTP packets. */
class Framer {
  #buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length > 0 ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: Buffer[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > MAX_PACKET || len < 1) throw new Error(`SFTP packet of ${len} bytes`);
      if (this.#buf.length < 4 + len) break;
      out.push(this.#buf.subarray(0, 4 + len));
      this.#buf = this.#buf.subarray(4 + len);
    }
    return out;
  }
}

export class SftpObserver {
  readonly #up = new Framer();
  readonly #down = new Framer();
  #queue: Buffer[] = [];
  #running = false;
  #failed = false;
  readonly #opening = new Map<number, { path: string; op: "put" | "get" }>();
  readonly #reading = new Map<number, string>();
  readonly #handles = new Map<string, SftpTransfer>();

  constructor(private readonly opts: SftpObserverOptions) {}

  /** Client -> target bytes. */
  fromClient(chunk: Buffer): void {
    if (this.#failed) return;
    try {
      this.#queue.push(...this.#up.push(chunk));
    } catch (err) {
      return this.#fail(err);
    }
    if (!this.#running) this.#run().catch((err: unknown) => this.#fail(err));
  }

  /** Target -> client bytes: forwarded at once, watched for handles and data sizes. */
  fromTarget(chunk: Buffer): void {
    this.opts.toClient(chunk);
    if (this.#failed) return;
    try {
      for (const p of this.#down.push(chunk)) this.#watchReply(p);
    } catch (err) {
      this.#fail(err);
    }
  }

  /** Reports handles still open when the channel ends. */
  close(): void {
    for (const t of this.#handles.values()) this.opts.onTransfer(t);
    this.#handles.clear();
  }

  #fail(err: unknown): void {
    this.#failed = true;
    this.opts.onProtocolError(`malformed SFTP stream: ${err instanceof Error ? err.message : String(err)}`);
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0 && !this.#failed) await this.#request(this.#queue.shift() as Buffer);
    } catch (err) {
      this.#fail(err);
    } finally {
      this.#running = false;
    }
  }

  async #request(p: Buffer): Promise<void> {
    const type = p[4] as number;
    if (type === 1 || p.length < 9) return this.opts.toTarget(p); // INIT carries a version, not an id
    const id = p.readUInt32BE(5);
    let at = 9;
    const s = (): string => {
      const [v, next] = readString(p, at);
      at = next;
      return v.toString("utf8");
    };
    let described: { op: string; paths: string[] } | undefined;
    switch (type) {
      case FXP.OPEN: {
        const path = s();
        const op = p.readUInt32BE(at) & PFLAG_WRITE ? "put" : "get";
        this.#opening.set(id, { path, op });
        described = { op, paths: [path] };
        break;
      }
      case FXP.READ: {
        const [handle] = readString(p, at);
        this.#reading.set(id, handle.toString("latin1"));
        break;
      }
      case FXP.WRITE: {
        const [handle, next] = readString(p, at);
        const [data] = readString(p, next + 8);
        const t = this.#handles.get(handle.toString("latin1"));
        if (t) t.written += data.length;
        break;
      }
      case FXP.CLOSE: {
        const [handle] = readString(p, at);
        const key = handle.toString("latin1");
        const t = this.#handles.get(key);
        if (t) {
          this.#handles.delete(key);
          this.opts.onTransfer(t);
        }
        break;
      }
      case FXP.REMOVE:
        described = { op: "remove", paths: [s()] };
        break;
      case FXP.MKDIR:
        described = { op: "mkdir", paths: [s()] };
        break;
      case FXP.RMDIR:
        described = { op: "rmdir", paths: [s()] };
        break;
      case FXP.SETSTAT:
        described = { op: "setstat", paths: [s()] };
        break;
      case FXP.RENAME:
        described = { op: "rename", paths: [s(), s()] };
        break;
      case FXP.SYMLINK:
        described = { op: "symlink", paths: [s(), s()] };
        break;
    }
    if (!described) return this.opts.toTarget(p);
    const argv = ["sftp", described.op, ...described.paths];
    const verdict = await this.opts.submit(argv.join(" "), sftpFacts(argv));
    if (verdict.forward) return this.opts.toTarget(p);
    this.#opening.delete(id);
    const body = Buffer.concat([Buffer.alloc(8), str(`gatehouse: ${verdict.message}`), str("en")]);
    body.writeUInt32BE(id, 0);
    body.writeUInt32BE(FX_PERMISSION_DENIED, 4);
    this.opts.toClient(packet(FXP.STATUS, body));
  }

  #watchReply(p: Buffer): void {
    const type = p[4] as number;
    if (p.length < 9) return;
    const id = p.readUInt32BE(5);
    if (type === FXP.HANDLE) {
      const open = this.#opening.get(id);
      this.#opening.delete(id);
      if (open) {
        const [handle] = readString(p, 9);
        this.#handles.set(handle.toString("latin1"), { op: open.op, path: open.path, read: 0, written: 0 });
      }
    } else if (type === FXP.DATA) {
      const handle = this.#reading.get(id);
      this.#reading.delete(id);
      const t = handle !== undefined ? this.#handles.get(handle) : undefined;
      if (t) t.read += readString(p, 9)[0].length;
    } else if (type === FXP.STATUS) {
      this.#opening.delete(id);
      this.#reading.delete(id);
    }
  }
}
