import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { maskRow, planMasking, type ColumnResolver, type MaskerLike, type RowPlan } from "./result-mask.js";
import { parseCommandTag, parseDataRow, parseRowDescription, type ColumnInfo } from "./rows.js";
import { readParameterStatus } from "./lexer-state.js";
import { parseErrorFields } from "./wire.js";

/** One request whose results are summarised into the recording. */
export interface ResultTrack {
  text: string;
  started: number;
  /** Results reported so far for this request. */
  results: number;
}

/**
 * What the relay expects the target to answer, in the order the frontend pipeline forwarded messages. The queue
 * is how results are matched to requests, how a refusal's ErrorResponse takes the place of the target's error
 * for the gateway's abort statement, and how injected Describe answers are hidden from the client.
 */
export type Expectation =
  | ({ kind: "query"; track?: ResultTrack; refusal?: Buffer } & Outcome) // completes at ReadyForQuery
  | { kind: "function"; refusal?: Buffer } // completes at ReadyForQuery
  | { kind: "sync" } // completes at ReadyForQuery
  | ({ kind: "parse"; refusal?: Buffer } & Outcome) // '1'
  | { kind: "bind" } // '2'
  | ({ kind: "close" } & Outcome) // '3'
  | { kind: "describe"; injected?: boolean } // 'T' or 'n' (after 't' for a statement)
  | ({ kind: "execute"; track?: ResultTrack } & Outcome); // 'C', 'I', 's' or an error

/**
 * Whether the target carried a message out, for the session's prepared statements (prepared-statements.ts).
 * `settled` is called once, when the expectation leaves the queue, with how many statements completed: for a Query
 * the CommandCompletes before an error (the statements after an error do not run), otherwise 1 for ParseComplete,
 * CloseComplete or a CommandComplete of the Execute, and 0 for an error or a message skipped to Sync.
 */
interface Outcome {
  settled?: (completed: number) => void;
  completed?: number;
}

export interface ResultSummary {
  /** 1-based position of this statement's result within its request (multi-statement queries). */
  statement: number;
  tag?: string;
  rows: number;
  ms: number;
  columns?: string[];
  masked_columns?: string[];
  mask_hits?: number;
  sample?: (string | null)[][];
  error?: { code?: string; message?: string };
}

export interface BackendRelayOptions {
  client: Socket | TLSSocket;
  target: Duplex;
  /**
   * Called for each finished statement (CommandComplete or error), after its bytes went to the client. A returned
   * promise is back-pressure from the recorder: the relay reads nothing more from the target, and records no
   * further result, until it settles.
   */
  onResult: (summary: ResultSummary) => Promise<void> | undefined;
  /**
   * The target started a binary COPY OUT on a connection with content detectors (a request that got past the
   * frontend's check): nothing of it reaches the client and the relay stops; the caller refuses and closes.
   * `text` is the request's text as evidence shows it.
   */
  onUnscannableCopy: (text: string) => void;
  /** First rows per result kept for the recording (after masking). */
  sampleRows: number;
  /** Each ParameterStatus the target reports (a setting changed), before it goes to the client. */
  onParameterStatus?: (name: string, value: string) => void;
  masking?: { masker: MaskerLike; resolver: ColumnResolver; maskText: string };
}

type Verdict = "pass" | "drop" | Buffer;

const HOLD_LIMIT = 1024 * 1024 * 1024;
/**
 * Finished statements that may wait unrecorded within one chunk of target data. Past this the relay records them
 * before reading on, and stops in the middle of a chunk if the recorder asks it to wait.
 */
const RESULTS_PENDING_LIMIT = 32;
/** RowDescriptions (their bytes) whose columns and masking plan a relay keeps, and the longest one kept. */
const DESCRIPTIONS_KEPT = 64;
const DESCRIPTION_KEY_LIMIT = 8 * 1024;

/** A RowDescription's parsed columns, their names and the masking plan made for them. */
interface Description {
  columns: ColumnInfo[];
  names: string[];
  plan: RowPlan | undefined;
}

/** A DataRow bigger than this is summarised rather than sampled. */
const SAMPLE_VALUE_LIMIT = 256;

/**
 * Target -> client. By default every byte goes through unchanged and only message headers are read (5 bytes per
 * message), so a large result costs one pass over headers. Message contents are decoded only for the few
 * control messages, the sampled first rows, and, when a result has masked columns or detectors apply, its rows.
 */
export class BackendRelay {
  readonly #opts: BackendRelayOptions;
  readonly #expect: Expectation[] = [];
  /** Remaining bytes of a message being streamed through without inspection. */
  #skip = 0;
  /** Start of a message that must be seen whole, waiting for its tail. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #queue: Buffer[] = [];
  #waiting = false;
  #clientBlocked = false;
  /** The recorder is over its high-water mark: results wait in #results, the target is not read. */
  #recorderBlocked = false;
  /** A binary COPY OUT the detectors cannot scan started: everything from the target is dropped from now on. */
  #cut = false;
  /** The session is ending: results are recorded without waiting for the recorder. */
  #finishing = false;
  /** Finished statements waiting to be recorded once the current output is written. */
  readonly #results: ResultSummary[] = [];
  #txStatus: "I" | "T" | "E" = "I";

  // current result
  #columns: ColumnInfo[] | undefined;
  /** The current result's column names, for its summary. */
  #columnNames: string[] | undefined;
  #plan: RowPlan | undefined;
  #rows = 0;
  #hits = 0;
  #sample: (string | null)[][] = [];
  /** Inside a text-format COPY OUT with detectors on: CopyData rows are scanned. */
  #copyScan = false;
  #resultStarted = performance.now();
  /** RowDescriptions seen in this session, by their bytes: see #rowDescription. */
  readonly #descriptions = new Map<string, Description>();

  constructor(opts: BackendRelayOptions) {
    this.#opts = opts;
  }

  get transactionStatus(): "I" | "T" | "E" {
    return this.#txStatus;
  }

  readonly #settledWaiters: (() => void)[] = [];

  /**
   * Every request forwarded so far that ends in a ReadyForQuery (a Query, a function call, an extended-protocol
   * batch up to its Sync) has had it. The server reports changed settings in ParameterStatus before
   * ReadyForQuery, so the settings seen are then those the target will read the next text with, unless an Execute
   * was forwarded after the last Sync (the caller's to know). Unsynced Parse/Bind/Describe/Close may remain.
   */
  get settled(): boolean {
    return !this.#expect.some((e) => e.kind === "query" || e.kind === "function" || e.kind === "sync");
  }

  /**
   * Resolves once `settled`, or once no waiting would end: the target waits for the client's COPY data
   * (`copyIn`), or skips the client's messages until a Sync it has not sent (`skippingToSync`). The caller must
   * have written what it waits answers for.
   */
  whenSettled(): Promise<void> {
    return new Promise((resolve) => {
      this.#settledWaiters.push(resolve);
      this.#wakeIfSettled();
    });
  }

  /**
   * An extended-protocol error in the batch the client has not synced yet: the target ignores every message
   * (a Query too) until the client's next Sync, so nothing sent before that Sync will run.
   */
  get skippingToSync(): boolean {
    return this.#skippingToSync;
  }

  #skippingToSync = false;

  /** The target sent CopyInResponse and waits for CopyData/CopyDone/CopyFail from the client. */
  get copyIn(): boolean {
    return this.#copyIn;
  }

  #copyIn = false;

  /** Wakes the waiters of whenSettled() if one of its conditions now holds (checks nothing when none waits). */
  #wakeIfSettled(): void {
    if (this.#settledWaiters.length === 0) return;
    if (this.settled || this.#copyIn || this.#skippingToSync) for (const w of this.#settledWaiters.splice(0)) w();
  }

  /** Called by the frontend pipeline right before it writes the corresponding message to the target. */
  expect(e: Expectation): void {
    if (e.kind === "sync") this.#skippingToSync = false;
    if (this.#expect.length === 0) this.#resultStarted = performance.now();
    this.#expect.push(e);
  }

  readonly #injected: Buffer[] = [];

  /**
   * A message of the gateway's own (the NoticeResponse of a held request) goes to the client between two target
   * messages, never into the middle of one still streaming through.
   */
  inject(msg: Buffer): void {
    this.#injected.push(msg);
    this.#drainInjected();
  }

  #drainInjected(): void {
    if (this.#injected.length === 0 || this.#skip > 0 || this.#heldBytes > 0 || this.#waiting) return;
    this.#write(this.#injected.splice(0));
  }

  /**
   * The session ends (its recording is sealed next): what the target sent and the relay still holds back for the
   * recorder goes to the client, and every finished result is recorded now, past the high-water mark if need be
   * (at most RESULTS_PENDING_LIMIT of them plus one chunk's worth), rather than lost to the seal.
   */
  finish(): void {
    this.#finishing = true;
    this.#recorderBlocked = false;
    this.#recordResults();
    this.#drainQueue();
  }

  push(chunk: Buffer): void {
    if (this.#cut) return;
    if (this.#waiting || this.#recorderBlocked) {
      this.#queue.push(chunk);
      return;
    }
    this.#process(chunk);
  }

  #process(chunk: Buffer): void {
    const out: Buffer[] = [];
    let pos = 0;
    if (this.#skip > 0) {
      pos = Math.min(this.#skip, chunk.length);
      this.#skip -= pos;
      out.push(chunk.subarray(0, pos));
    } else if (this.#heldBytes > 0) {
      const need = this.#heldNeed(chunk);
      if (need === undefined || chunk.length < need) {
        this.#hold(chunk);
        return;
      }
      const whole = Buffer.concat([...this.#held, chunk.subarray(0, need)]);
      this.#held = [];
      this.#heldBytes = 0;
      pos = need;
      if (!this.#emit(whole, out, chunk.subarray(pos))) return;
      if (this.#cut) return this.#cutOff(out);
    }
    let passStart = pos;
    while (pos < chunk.length) {
      if (chunk.length - pos < 5) {
        this.#flushRange(out, chunk, passStart, pos);
        this.#write(out);
        this.#hold(chunk.subarray(pos));
        return;
      }
      const type = chunk[pos] as number;
      const total = chunk.readInt32BE(pos + 1) + 1;
      if (pos + total > chunk.length) {
        if (this.#streamable(type)) {
          this.#count(type);
          this.#skip = pos + total - chunk.length;
          pos = chunk.length;
          break;
        }
        this.#flushRange(out, chunk, passStart, pos);
        this.#write(out);
        this.#hold(chunk.subarray(pos));
        return;
      }
      if (this.#streamable(type)) {
        this.#count(type);
        pos += total;
        continue;
      }
      const msg = chunk.subarray(pos, pos + total);
      const verdict = this.#handle(msg);
      if (verdict !== "pass") {
        this.#flushRange(out, chunk, passStart, pos);
        if (this.#cut) return this.#cutOff(out);
        passStart = pos + total;
      }
      pos += total;
      if (verdict instanceof Promise) {
        this.#await(verdict, msg, out, chunk.subarray(pos));
        return;
      }
      if (verdict !== "pass" && verdict !== "drop") out.push(verdict);
      if (this.#results.length >= RESULTS_PENDING_LIMIT) {
        // many statements finished in this chunk (a pipeline): record them now, and stop here if the recorder
        // is full, so that at most this many results are ever held back from it
        this.#flushRange(out, chunk, passStart, pos);
        passStart = pos;
        this.#write(out);
        if (this.#recorderBlocked) {
          if (pos < chunk.length) this.#queue.unshift(chunk.subarray(pos));
          return;
        }
      }
    }
    this.#flushRange(out, chunk, passStart, pos);
    this.#write(out);
    this.#drainInjected();
  }

  /** Handles one complete message held across chunks; false when processing went async. */
  #emit(msg: Buffer, out: Buffer[], rest: Buffer): boolean {
    const type = msg[0] as number;
    if (this.#streamable(type)) {
      this.#count(type);
      out.push(msg);
      return true;
    }
    const verdict = this.#handle(msg);
    if (this.#cut) return true;
    if (verdict instanceof Promise) {
      this.#await(verdict, msg, out, rest);
      return false;
    }
    if (verdict === "pass") out.push(msg);
    else if (verdict !== "drop") out.push(verdict);
    return true;
  }

  #await(p: Promise<Verdict>, msg: Buffer, out: Buffer[], rest: Buffer): void {
    this.#write(out);
    this.#waiting = true;
    this.#opts.target.pause();
    if (rest.length > 0) this.#queue.unshift(rest);
    p.then(
      (v) => {
        if (v === "pass") this.#opts.client.write(msg);
        else if (v !== "drop") this.#opts.client.write(v);
      },
      () => this.#opts.client.write(msg),
    ).finally(() => {
      this.#waiting = false;
      this.#resumeTarget();
      this.#drainQueue();
    });
  }

  /** Reads the target again once nothing holds it: an awaited verdict, a slow client, a full recorder. */
  #resumeTarget(): void {
    if (!this.#waiting && !this.#clientBlocked && !this.#recorderBlocked && !this.#cut) this.#opts.target.resume();
  }

  #drainQueue(): void {
    while (!this.#waiting && !this.#recorderBlocked && !this.#cut && this.#queue.length > 0) {
      this.#process(this.#queue.shift() as Buffer);
    }
    this.#drainInjected();
  }

  /** Records finished statements in order until the recorder asks to wait. */
  #recordResults(): void {
    const results = this.#results;
    while (results.length > 0 && !this.#recorderBlocked) {
      const wait = this.#opts.onResult(results.shift() as ResultSummary);
      if (wait && !this.#finishing) {
        this.#recorderBlocked = true;
        this.#opts.target.pause();
        const resume = () => {
          this.#recorderBlocked = false;
          this.#recordResults();
          if (this.#recorderBlocked) return;
          this.#resumeTarget();
          this.#drainQueue();
        };
        void wait.then(resume, resume);
      }
    }
  }

  /** Stops relaying for good after an unscannable binary COPY OUT began; what came before it is delivered. */
  #cutOff(out: Buffer[]): void {
    this.#write(out);
    this.#queue.length = 0;
    this.#held = [];
    this.#heldBytes = 0;
    this.#opts.target.pause();
    this.#opts.onUnscannableCopy(this.#currentTrack()?.text ?? "");
  }

  #heldNeed(chunk: Buffer): number | undefined {
    if (this.#heldBytes + chunk.length < 5) return undefined;
    const head = Buffer.concat([...this.#held, chunk.subarray(0, Math.max(0, 5 - this.#heldBytes))]);
    return head.readInt32BE(1) + 1 - this.#heldBytes;
  }

  #hold(part: Buffer): void {
    this.#held.push(part);
    this.#heldBytes += part.length;
    if (this.#heldBytes > HOLD_LIMIT) {
      this.#opts.client.destroy();
      this.#opts.target.destroy();
    }
  }

  #flushRange(out: Buffer[], chunk: Buffer, from: number, to: number): void {
    if (to > from) out.push(chunk.subarray(from, to));
  }

  #write(out: Buffer[]): void {
    if (out.length > 0) this.#send(out);
    // recorded after the bytes are handed to the client socket: hashing a result event is not on its latency path
    if (this.#results.length > 0) this.#recordResults();
  }

  #send(out: Buffer[]): void {
    const client = this.#opts.client;
    let ok = true;
    if (out.length === 1) ok = client.write(out[0] as Buffer);
    else {
      client.cork();
      for (const b of out) ok = client.write(b);
      process.nextTick(() => client.uncork());
    }
    out.length = 0;
    if (!ok && !this.#clientBlocked) {
      // the client reads slower than the target sends: stop reading the target until it catches up
      this.#clientBlocked = true;
      this.#opts.target.pause();
      client.once("drain", () => {
        this.#clientBlocked = false;
        this.#resumeTarget();
      });
    }
  }

  /** Messages that never need their content: rows past the sample when no masking applies, COPY data. */
  #streamable(type: number): boolean {
    if (type === 0x44 /* D */) return this.#plan === undefined && this.#sample.length >= this.#opts.sampleRows;
    return type === 0x64 /* d */ && !this.#copyScan;
  }

  #count(type: number): void {
    if (type === 0x44) this.#rows++;
  }

  #handle(msg: Buffer): Verdict | Promise<Verdict> {
    const type = String.fromCharCode(msg[0] as number);
    const body = msg.subarray(5);
    switch (type) {
      case "D":
        return this.#dataRow(body);
      case "H": {
        // CopyOutResponse: overall format 0 is text, where detectors can scan each row
        const masker = this.#opts.masking?.masker;
        if (masker?.hasDetectors !== true) return "pass";
        if (body[0] !== 0) {
          // binary rows cannot be scanned: none of them may reach the client (fail closed)
          this.#cut = true;
          return "drop";
        }
        this.#copyScan = true;
        return "pass";
      }
      case "d":
        return this.#copyRow(body);
      case "c":
        this.#copyScan = false;
        return "pass";
      case "G":
        // CopyInResponse: until the copy ends, the target answers nothing but the client's COPY messages
        this.#copyIn = true;
        this.#wakeIfSettled();
        return "pass";
      case "T":
        return this.#rowDescription(body);
      case "C": {
        this.#copyIn = false;
        const { tag, rows } = parseCommandTag(body);
        this.#finishResult({ tag, rows: rows ?? this.#rows });
        const head = this.#head();
        if (head?.kind === "execute") this.#shift(1);
        else if (head?.kind === "query" && head.settled) head.completed = (head.completed ?? 0) + 1;
        return "pass";
      }
      case "I":
      case "s":
        if (type === "I") this.#finishResult({ tag: "EMPTY" });
        if (this.#head()?.kind === "execute") this.#shift(0);
        return "pass";
      case "E":
        this.#copyIn = false;
        return this.#error(body);
      case "Z":
        this.#txStatus = String.fromCharCode(body[0] ?? 0x49) as "I" | "T" | "E";
        this.#completeAtReady();
        this.#copyIn = false;
        this.#wakeIfSettled();
        return "pass";
      case "S": {
        const status = readParameterStatus(body);
        if (status) this.#opts.onParameterStatus?.(status.name, status.value);
        return "pass";
      }
      case "1":
      case "2":
      case "3":
        this.#shift(1);
        return "pass";
      case "n": {
        const head = this.#head();
        if (head?.kind === "describe") {
          this.#expect.shift();
          if (head.injected) return "drop";
        }
        return "pass";
      }
      default:
        return "pass";
    }
  }

  #head(): Expectation | undefined {
    return this.#expect[0];
  }

  /** Takes the head expectation off the queue; one that waits for its outcome hears it (`completed`: see Outcome). */
  #shift(completed?: number): Expectation | undefined {
    const e = this.#expect.shift();
    if (e !== undefined && "settled" in e && e.settled) e.settled(completed ?? e.completed ?? 0);
    return e;
  }

  #dataRow(body: Buffer): Verdict {
    this.#rows++;
    let out: Verdict = "pass";
    let shown = body;
    const masking = this.#opts.masking;
    if (this.#plan && masking) {
      const masked = maskRow(masking.masker, this.#plan, body);
      if (masked) {
        out = masked.raw;
        shown = masked.raw.subarray(5);
        this.#hits += masked.hits;
      }
    }
    if (this.#sample.length < this.#opts.sampleRows) this.#sample.push(sampleRow(shown, this.#columns));
    return out;
  }

  #copyRow(body: Buffer): Verdict {
    const masker = this.#opts.masking?.masker;
    if (!this.#copyScan || !masker) return "pass";
    const masked = masker.maskText(body.toString("utf8"));
    if (!masked) return "pass";
    this.#hits++;
    const text = Buffer.from(masked.text, "utf8");
    const out = Buffer.allocUnsafe(5 + text.length);
    out[0] = 0x64;
    out.writeInt32BE(4 + text.length, 1);
    text.copy(out, 5);
    return out;
  }

  /**
   * A RowDescription sets the result's columns and masking plan. A session mostly repeats a few statements, so each
   * description's columns and plan are kept by its bytes once the plan was made synchronously: the catalog answers
   * from its session cache then, and the relations it caches never change for the session (catalog.ts), so the
   * same bytes get the same plan. A plan made after a catalog lookup, or the mask-everything plan of a failed one,
   * is not kept: the next identical description plans again (from the cache the lookup filled).
   */
  #rowDescription(body: Buffer): Verdict | Promise<Verdict> {
    const head = this.#head();
    const injected = head?.kind === "describe" && head.injected === true;
    if (head?.kind === "describe") this.#expect.shift();
    const verdict: Verdict = injected ? "drop" : "pass";
    const key = body.length <= DESCRIPTION_KEY_LIMIT ? body.toString("latin1") : undefined;
    const known = key === undefined ? undefined : this.#descriptions.get(key);
    if (known) {
      this.#columns = known.columns;
      this.#columnNames = known.names;
      this.#plan = known.plan;
      return verdict;
    }
    const columns = parseRowDescription(body);
    const names = columns.map((c) => c.name);
    this.#columns = columns;
    this.#columnNames = names;
    this.#plan = undefined;
    const remember = (plan: RowPlan | undefined): void => {
      if (key === undefined) return;
      if (this.#descriptions.size >= DESCRIPTIONS_KEPT) this.#descriptions.clear();
      this.#descriptions.set(key, { columns, names, plan });
    };
    const masking = this.#opts.masking;
    if (!masking || !masking.masker.enabled) {
      remember(undefined);
      return verdict;
    }
    const origins = columns.map((c) => ({ tableOid: c.tableOid, attnum: c.attnum }));
    const resolved = masking.masker.hasColumnRules ? masking.resolver.resolve(origins) : columns.map(() => []);
    if (resolved instanceof Promise) {
      const apply = (sources: Awaited<typeof resolved>): Verdict => {
        // a newer RowDescription may have arrived meanwhile only if this one was not awaited; keep the latest
        if (this.#columns === columns) this.#plan = planMasking(masking.masker, columns, sources, masking.maskText);
        return verdict;
      };
      // fail closed: if the catalog cannot be read, mask every column rather than guess
      return resolved.then(apply, () => {
        this.#plan = {
          replace: columns.map((c) => (c.format === 0 ? Buffer.from(masking.maskText) : null)),
          detect: columns.map(() => false),
          maskedColumns: columns.map((c) => c.name),
        };
        return verdict;
      });
    }
    this.#plan = planMasking(masking.masker, columns, resolved, masking.maskText);
    remember(this.#plan);
    return verdict;
  }

  #error(body: Buffer): Verdict {
    const head = this.#head();
    const fields = parseErrorFields(body);
    let verdict: Verdict = "pass";
    if (head && "refusal" in head && head.refusal) {
      // the target's answer to the gateway's abort statement: the client sees the gateway's refusal instead
      verdict = head.refusal;
      this.#resetResult();
    } else {
      this.#finishResult({ error: { code: fields.get("C"), message: fields.get("M") } });
    }
    if (head && head.kind !== "query" && head.kind !== "function" && head.kind !== "sync") {
      // extended protocol: the server skips everything up to Sync, so drop what it will never answer (a Query or
      // function call among it included: the server skips those too)
      while (this.#expect.length > 0 && this.#head()?.kind !== "sync") this.#shift(0);
      // no Sync forwarded after the error: the target skips what the client sends until its next one
      if (this.#expect.length === 0) this.#skippingToSync = true;
      this.#wakeIfSettled();
    }
    return verdict;
  }

  #completeAtReady(): void {
    this.#copyScan = false;
    while (this.#expect.length > 0) {
      const e = this.#shift() as Expectation;
      if (e.kind === "query" || e.kind === "function" || e.kind === "sync") break;
    }
    this.#resetResult();
    this.#columns = undefined;
    this.#columnNames = undefined;
    this.#plan = undefined;
  }

  #currentTrack(): ResultTrack | undefined {
    for (const e of this.#expect) {
      if ((e.kind === "query" || e.kind === "execute") && e.track) return e.track;
      if (e.kind === "query" || e.kind === "sync") return undefined;
    }
    return undefined;
  }

  #finishResult(r: { tag?: string; rows?: number; error?: ResultSummary["error"] }): void {
    const track = this.#currentTrack();
    if (track) {
      const now = performance.now();
      this.#results.push({
        statement: ++track.results,
        ...(r.tag !== undefined ? { tag: r.tag } : {}),
        rows: r.rows ?? this.#rows,
        ms: Math.round((now - this.#resultStarted) * 1000) / 1000,
        ...(this.#columnNames ? { columns: this.#columnNames } : {}),
        ...(this.#plan && this.#plan.maskedColumns.length > 0 ? { masked_columns: this.#plan.maskedColumns } : {}),
        ...(this.#hits > 0 ? { mask_hits: this.#hits } : {}),
        ...(this.#sample.length > 0 ? { sample: this.#sample } : {}),
        ...(r.error ? { error: r.error } : {}),
      });
    }
    this.#resetResult();
  }

  #resetResult(): void {
    this.#rows = 0;
    this.#hits = 0;
    this.#sample = [];
    this.#resultStarted = performance.now();
  }
}

function sampleRow(body: Buffer, columns: ColumnInfo[] | undefined): (string | null)[] {
  return parseDataRow(body).map((v, i) => {
    if (v === null) return null;
    if (columns?.[i]?.format === 1) return `\\x${v.subarray(0, SAMPLE_VALUE_LIMIT / 2).toString("hex")}`;
    const s = v.toString("utf8", 0, Math.min(v.length, SAMPLE_VALUE_LIMIT));
    return v.length > SAMPLE_VALUE_LIMIT ? `${s}… (${v.length} bytes)` : s;
  });
}
