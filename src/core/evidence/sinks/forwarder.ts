import type { AuditRecord } from "../audit-event.js";
import type { Checkpoint } from "../records.js";
import { PermanentSinkError, RetryableSinkError, type AuditSink, type SinkLogger } from "./types.js";

export interface SinkForwarderOptions {
  /** Records waiting per sink before the oldest are dropped (default 10000). */
  maxQueue?: number;
  /** Most records per deliver() call (default 500). */
  maxBatch?: number;
  /** Retry backoff: base * 2^attempt with jitter, capped (defaults 250 ms, 30 s). Retries never stop on their own. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /**
   * Reads committed records back from the store (e.g. `(from, limit) => store.readAudit({ fromSeq: from, limit })`).
   * With it, records dropped from a full queue, and records a sink missed while the gateway was down (file sink),
   * are delivered later in seq order instead of being lost to that sink.
   */
  backfill?: (fromSeq: number, limit: number) => Promise<AuditRecord[]>;
  logger?: SinkLogger;
}

export interface SinkStats {
  name: string;
  /** Waiting in memory. */
  queued: number;
  delivered: number;
  /** Dropped from a full queue (or still queued at close). Those later backfilled are also counted in `backfilled`. */
  dropped: number;
  backfilled: number;
  /** Given up after a permanent refusal (e.g. HTTP 4xx). */
  rejected: number;
  retries: number;
  /** Seq range dropped and waiting to be backfilled from the store. */
  gap?: { from: number; to: number };
  lastError?: string;
}

/**
 * Takes records after they are committed and forwards them to every sink, off the critical path: `enqueue`
 * only copies references into per-sink queues and never blocks, throws or waits for a sink. Each sink has its
 * own queue and worker, so a slow or dead sink delays nothing but itself.
 *
 * Overflow policy: a full queue drops its oldest records (counted in `dropped`, one warning per episode). The
 * records are not lost: they stay in the store, and with `backfill` the worker re-reads the dropped seq range
 * and delivers it before newer records, keeping each sink in seq order.
 */
export class SinkForwarder {
  readonly #workers: SinkWorker[];

  constructor(sinks: AuditSink[], options: SinkForwarderOptions = {}) {
    const settings: Settings = {
      maxQueue: options.maxQueue ?? 10_000,
      maxBatch: options.maxBatch ?? 500,
      retryBaseMs: options.retryBaseMs ?? 250,
      retryMaxMs: options.retryMaxMs ?? 30_000,
      backfill: options.backfill,
      logger: options.logger ?? console,
    };
    this.#workers = sinks.map((sink) => new SinkWorker(sink, settings));
  }

  /** Called after a commit with the committed records (seq order). Never throws. */
  enqueue(records: readonly AuditRecord[]): void {
    if (records.length === 0) return;
    for (const w of this.#workers) w.enqueue(records);
  }

  /**
   * Sends a signed checkpoint to every sink, in line with the records, as an item
   * `{type: "audit.checkpoint", writer, seq, time, hash, key_id, note}` where seq is the record it covers. A copy
   * outside the data directory is what can later show that a log was cut short. Not backfilled: the log keeps it.
   */
  enqueueCheckpoint(cp: Checkpoint): void {
    if (cp.note === undefined) return;
    const item = {
      type: "audit.checkpoint",
      ...(cp.writer !== undefined ? { writer: cp.writer } : {}),
      seq: cp.seq,
      time: cp.time,
      hash: cp.hash,
      key_id: cp.key_id,
      note: cp.note,
    };
    // not an audit record (no prev_hash): sinks write it as it is; seq keeps the queue's order checks working
    for (const w of this.#workers) w.enqueue([item as unknown as AuditRecord]);
  }

  stats(): SinkStats[] {
    return this.#workers.map((w) => w.stats());
  }

  /** Resolves when every queue is empty and nothing is in flight (tests, orderly shutdown). */
  async flush(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.idle()));
  }

  /** Delivers what is queued for up to `timeoutMs`, then stops retrying and closes every sink. */
  async close(timeoutMs = 5_000): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.close(timeoutMs)));
  }
}

interface Settings {
  maxQueue: number;
  maxBatch: number;
  retryBaseMs: number;
  retryMaxMs: number;
  backfill: ((fromSeq: number, limit: number) => Promise<AuditRecord[]>) | undefined;
  logger: SinkLogger;
}

class SinkWorker {
  #queue: AuditRecord[] = [];
  #gap: { from: number; to: number } | undefined;
  #running = false;
  #stopped = false;
  #positionChecked = false;
  #failing = false;
  #wake: (() => void) | undefined;
  #idleWaiters: (() => void)[] = [];
  #counts = { delivered: 0, dropped: 0, backfilled: 0, rejected: 0, retries: 0 };
  #lastError: string | undefined;
  #inflight: { records: AuditRecord[]; fromStore: boolean } | undefined;

  constructor(
    readonly sink: AuditSink,
    readonly settings: Settings,
  ) {}

  enqueue(records: readonly AuditRecord[]): void {
    if (this.#stopped) {
      this.#counts.dropped += records.length;
      return;
    }
    for (const r of records) this.#queue.push(r);
    const excess = this.#queue.length - this.settings.maxQueue;
    if (excess > 0) this.#drop(this.#queue.splice(0, excess));
    this.#kick();
  }

  stats(): SinkStats {
    return {
      name: this.sink.name,
      queued: this.#queue.length + (this.#inflight?.records.length ?? 0),
      ...this.#counts,
      ...(this.#gap ? { gap: { ...this.#gap } } : {}),
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
    };
  }

  idle(): Promise<void> {
    if (!this.#running && (this.#stopped || !this.#hasWork())) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async close(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.idle(), deadline]);
    clearTimeout(timer);
    this.#stopped = true;
    this.#wake?.();
    if (this.#queue.length > 0) {
      this.settings.logger.warn(
        `audit sink ${this.sink.name}: closing with ${this.#queue.length} records undelivered (they remain in the store)`,
      );
      this.#counts.dropped += this.#queue.length;
      this.#queue = [];
    }
    await this.idle();
    await this.sink.close().catch((err: unknown) => {
      this.settings.logger.warn(`audit sink ${this.sink.name}: close failed: ${describe(err)}`);
    });
  }

  #hasWork(): boolean {
    return this.#queue.length > 0 || (this.#gap !== undefined && this.settings.backfill !== undefined);
  }

  #drop(records: AuditRecord[]): void {
    if (records.length === 0) return;
    this.#counts.dropped += records.length;
    const first = records[0]!.seq;
    const last = records[records.length - 1]!.seq;
    if (!this.#gap) {
      this.settings.logger.warn(
        `audit sink ${this.sink.name}: queue full (${this.settings.maxQueue}), dropping oldest records from seq ${first}` +
          (this.settings.backfill ? "; they will be re-read from the store" : "; they remain in the store"),
      );
    }
    this.#widenGap(first, last);
  }

  #widenGap(from: number, to: number): void {
    this.#gap = this.#gap ? { from: Math.min(this.#gap.from, from), to: Math.max(this.#gap.to, to) } : { from, to };
  }

  #kick(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    void this.#run()
      .catch((err: unknown) =>
        this.settings.logger.error(`audit sink ${this.sink.name}: worker failed: ${describe(err)}`),
      )
      .finally(() => {
        this.#running = false;
        if (this.#hasWork() && !this.#stopped) this.#kick();
        else for (const resolve of this.#idleWaiters.splice(0)) resolve();
      });
  }

  async #run(): Promise<void> {
    await this.#checkPosition();
    let attempt = 0;
    while (!this.#stopped) {
      try {
        // The batch leaves the queue when taken, so a drop-oldest during a slow delivery cannot touch it;
        // a retry resends exactly the same records.
        if (!this.#inflight) {
          const fromStore = this.#gap !== undefined && this.settings.backfill !== undefined;
          const records = fromStore ? await this.#takeGap() : this.#queue.splice(0, this.settings.maxBatch);
          if (records.length === 0) {
            if (fromStore) continue; // that range is gone from the store: go on with the queue
            return;
          }
          this.#inflight = { records, fromStore };
        }
        await this.sink.deliver(this.#inflight.records);
      } catch (err) {
        if (err instanceof PermanentSinkError) {
          const n = this.#inflight?.records.length ?? 0;
          this.#lastError = err.message;
          this.settings.logger.error(`audit sink ${this.sink.name}: giving up on ${n} records: ${err.message}`);
          this.#counts.rejected += n;
          this.#inflight = undefined;
          attempt = 0;
          continue;
        }
        this.#noteFailure(err);
        this.#counts.retries++;
        await this.#sleep(this.#backoff(attempt++, err));
        continue;
      }
      const { records, fromStore } = this.#inflight;
      this.#inflight = undefined;
      this.#counts.delivered += records.length;
      if (fromStore) this.#counts.backfilled += records.length;
      if (this.#failing) this.settings.logger.warn(`audit sink ${this.sink.name}: delivering again`);
      this.#failing = false;
      attempt = 0;
    }
    if (this.#inflight) {
      this.#counts.dropped += this.#inflight.records.length;
      this.#inflight = undefined;
    }
  }

  /** Reads the next part of the dropped range back from the store and moves the gap past it. */
  async #takeGap(): Promise<AuditRecord[]> {
    const gap = this.#gap!;
    const limit = Math.min(this.settings.maxBatch, gap.to - gap.from + 1);
    const rows = (await this.settings.backfill!(gap.from, limit)).filter((r) => r.seq >= gap.from && r.seq <= gap.to);
    const last = rows[rows.length - 1];
    if (!last) {
      this.settings.logger.warn(
        `audit sink ${this.sink.name}: seq ${gap.from}..${gap.to} is no longer in the store; that range is skipped`,
      );
    }
    // Drops may have widened the gap meanwhile: only its start moves.
    const now = this.#gap ?? gap;
    const next = last ? last.seq + 1 : gap.to + 1;
    this.#gap = next > now.to ? undefined : { from: next, to: now.to };
    return rows;
  }

  /** A sink that remembers what it holds (file) gets, from the store, what was committed while we were down. */
  async #checkPosition(): Promise<void> {
    if (this.#positionChecked || !this.sink.lastDeliveredSeq || !this.settings.backfill) return;
    this.#positionChecked = true;
    const first = this.#queue[0]?.seq;
    let last: number | undefined;
    try {
      last = await this.sink.lastDeliveredSeq();
    } catch (err) {
      this.settings.logger.warn(`audit sink ${this.sink.name}: cannot read its position: ${describe(err)}`);
      return;
    }
    if (first !== undefined && last !== undefined && last + 1 < first) this.#widenGap(last + 1, first - 1);
  }

  #noteFailure(err: unknown): void {
    this.#lastError = describe(err);
    if (!this.#failing) {
      this.settings.logger.warn(
        `audit sink ${this.sink.name}: delivery failed, retrying with backoff: ${this.#lastError}`,
      );
    }
    this.#failing = true;
  }

  #backoff(attempt: number, err: unknown): number {
    const exp = Math.min(this.settings.retryMaxMs, this.settings.retryBaseMs * 2 ** Math.min(attempt, 30));
    const jittered = exp / 2 + (Math.random() * exp) / 2; // spread retries of many gateways apart
    const hint = err instanceof RetryableSinkError ? (err.retryAfterMs ?? 0) : 0;
    return Math.min(this.settings.retryMaxMs, Math.max(jittered, hint));
  }

  /** A retry wait that close() can cut short. */
  async #sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
