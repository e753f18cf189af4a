import type { ShellAnalysis } from "../inspect/shell/index.js";
import type { RequestFacts } from "../policy/facts.js";

/** The answer for one submitted line (or other request): forward it, or refuse with a message for the user. */
export type LineVerdict = { forward: true } | { forward: false; message: string };

export interface ShellInputOptions {
  /**
   * The client has a terminal (a PTY): it echoes keystrokes, so they are forwarded as typed and only Enter is held.
   * Without one, whole lines are held.
   */
  pty: boolean;
  analyze(text: string): ShellAnalysis;
  /** Admits one line (the adapter's gate call); a refused line is cancelled and its message shown to the user. */
  submit(text: string, facts: RequestFacts): Promise<LineVerdict>;
  /** Bytes for the target's input (its shell reads them). */
  toTarget(bytes: Buffer): void;
  /** Bytes for the user's terminal (a refusal's message). */
  toClient(bytes: Buffer): void;
  /** Handling a line failed (not a refusal: those are verdicts); nothing more of this input is forwarded. */
  onError(err: unknown): void;
}

const CR = 0x0d;
const LF = 0x0a;
const ESC = 0x1b;
const CTRL_C = 0x03;
const CTRL_U = 0x15;
const CTRL_W = 0x17;
const BACKSPACE = [0x7f, 0x08];
/** Control keys that change the line in ways a byte log cannot follow (history, completion, cursor moves, yank). */
const UNTRACKABLE = new Set([0x01, 0x02, 0x05, 0x06, 0x09, 0x0b, 0x0e, 0x10, 0x12, 0x13, 0x14, 0x19]);
const PASTE_START = Buffer.from("\x1b[200~");
const PASTE_END = Buffer.from("\x1b[201~");
const MAX_LINE_BYTES = 64 * 1024;
const ALT_SCREEN_ON = new RegExp(String.raw`\u001b\[\?(?:1049|1047|47)h`);
const ALT_SCREEN_OFF = new RegExp(String.raw`\u001b\[\?(?:1049|1047|47)l`);

/**
 * Best-effort reconstruction of what the user types at an interactive shell, so each submitted line can be
 * admitted before its Enter reaches the target. Plain typing, backspace, Ctrl-U/W/C and bracketed paste are
 * followed exactly; keys that edit invisibly (arrows, Tab completion, history search) make the line "uncertain",
 * which is submitted as unparseable (denied unless on_unparseable says otherwise). Lines ending inside an
 * unfinished construct (`for ... do`, an open quote) are forwarded, since the shell runs nothing yet, and
 * submitted together with the line that completes them. Full-screen programs (alternate screen) are not tracked.
 */
export class ShellInput {
  #queue: Buffer[] = [];
  #running = false;
  #line: number[] = [];
  #pending = "";
  #uncertain: string | undefined;
  #inPaste = false;
  #fullScreen = false;
  #ended = false;
  #failed = false;
  #onIdle: (() => void) | undefined;

  constructor(private readonly opts: ShellInputOptions) {}

  push(chunk: Buffer): void {
    if (this.#failed) return;
    this.#queue.push(chunk);
    if (!this.#running) this.#start();
  }

  /** Client EOF: a non-PTY shell's last unterminated line is still submitted. Resolves once all input is handled. */
  end(): Promise<void> {
    this.#ended = true;
    if (this.#failed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onIdle = resolve;
      if (!this.#running) this.#start();
    });
  }

  /** Watches target output for the alternate screen (vim, less, top): keystrokes there are not shell lines. */
  observeOutput(bytes: Buffer): void {
    if (!this.opts.pty) return;
    const text = bytes.toString("latin1");
    if (ALT_SCREEN_ON.test(text)) this.#fullScreen = true;
    if (ALT_SCREEN_OFF.test(text)) this.#fullScreen = false;
  }

  #start(): void {
    // #run reports its own failures; this only catches an onError handler that throws
    this.#run().catch((err: unknown) => this.opts.onError(err));
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0 && !this.#failed) await this.#process(this.#queue.shift() as Buffer);
      if (this.#ended && !this.opts.pty && (this.#line.length > 0 || this.#pending)) await this.#enter(Buffer.alloc(0));
    } catch (err) {
      this.#failed = true;
      this.#queue = [];
      this.opts.onError(err);
    } finally {
      this.#running = false;
      if (this.#ended && this.#queue.length === 0) this.#onIdle?.();
    }
  }

  async #process(chunk: Buffer): Promise<void> {
    if (this.opts.pty && this.#fullScreen) return this.opts.toTarget(chunk);
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (this.#inPaste) {
        if (b === ESC && chunk.subarray(i, i + PASTE_END.length).equals(PASTE_END)) {
          this.#inPaste = false;
          i += PASTE_END.length - 1;
        } else this.#append(b === CR ? LF : b);
        continue;
      }
      if (b === CR || b === LF) {
        if (this.opts.pty) this.opts.toTarget(chunk.subarray(from, i));
        // CR LF from a non-PTY client is one line end
        const next = chunk[i + 1];
        const enter = chunk.subarray(i, b === CR && next === LF && !this.opts.pty ? i + 2 : i + 1);
        if (enter.length === 2) i++;
        await this.#enter(enter);
        from = i + 1;
        continue;
      }
      if (b === ESC) {
        if (chunk.subarray(i, i + PASTE_START.length).equals(PASTE_START)) {
          this.#inPaste = true;
          i += PASTE_START.length - 1;
          continue;
        }
        this.#uncertain ??= "cursor or history keys";
        i += escapeLength(chunk, i) - 1;
      } else if (BACKSPACE.includes(b)) {
        // drop one UTF-8 character
        while (this.#line.length > 0 && ((this.#line.pop() as number) & 0xc0) === 0x80);
      } else if (b === CTRL_U) {
        this.#line = [];
      } else if (b === CTRL_W) {
        while (this.#line.length > 0 && this.#line[this.#line.length - 1] === 0x20) this.#line.pop();
        while (this.#line.length > 0 && this.#line[this.#line.length - 1] !== 0x20) this.#line.pop();
      } else if (b === CTRL_C) {
        this.#reset();
      } else if (UNTRACKABLE.has(b)) {
        this.#uncertain ??= b === 0x09 ? "Tab completion" : "line-editing keys";
      } else if (b >= 0x20 || b === 0x09) {
        this.#append(b);
      }
    }
    if (this.opts.pty) this.opts.toTarget(chunk.subarray(from));
  }

  #append(b: number): void {
    if (this.#line.length >= MAX_LINE_BYTES) this.#uncertain ??= "a line longer than 64 KiB";
    else this.#line.push(b);
  }

  #reset(): void {
    this.#line = [];
    this.#pending = "";
    this.#uncertain = undefined;
  }

  async #enter(enter: Buffer): Promise<void> {
    const line = Buffer.from(this.#line).toString("utf8");
    const text = this.#pending ? `${this.#pending}\n${line}` : line;
    const uncertain = this.#uncertain;
    const forwardLine = () => {
      if (!this.opts.pty) this.opts.toTarget(Buffer.from(`${line}\n`));
      else this.opts.toTarget(enter);
    };
    this.#line = [];
    this.#uncertain = undefined;
    if (text.trim() === "" && uncertain === undefined) {
      this.#pending = "";
      return forwardLine();
    }
    const analysis = this.opts.analyze(text);
    if (analysis.incomplete && uncertain === undefined && !this.#ended) {
      // the shell only asks for more: nothing runs until the construct is complete
      this.#pending = text;
      return forwardLine();
    }
    this.#pending = "";
    const facts = analysis.facts;
    if (uncertain !== undefined) {
      facts.unparseable = {
        reason: `the line was edited with ${uncertain}, which the gateway cannot follow; it saw ${JSON.stringify(text)}`,
      };
    }
    const verdict = await this.opts.submit(text, facts);
    if (verdict.forward) return forwardLine();
    this.opts.toClient(Buffer.from(`\r\n\x1b[1;31mgatehouse: ${verdict.message}\x1b[0m\r\n`));
    // the typed characters already sit in the target's line editor: Ctrl-C discards them (and any pending lines)
    if (this.opts.pty) this.opts.toTarget(Buffer.from([CTRL_C]));
  }
}

/** Length of the escape sequence at `i` (CSI, SS3 or a two-byte ESC x), bounded by the chunk. */
function escapeLength(chunk: Buffer, i: number): number {
  const next = chunk[i + 1];
  if (next === 0x5b) {
    let j = i + 2;
    while (j < chunk.length && !((chunk[j] as number) >= 0x40 && (chunk[j] as number) <= 0x7e)) j++;
    return Math.min(j + 1, chunk.length) - i;
  }
  if (next === 0x4f) return Math.min(3, chunk.length - i);
  return next === undefined ? 1 : 2;
}
