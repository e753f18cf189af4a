import { performance } from "node:perf_hooks";
import type { Ed25519KeyPair } from "../keys.js";
import type { EncodedRecordingEvent, Store } from "../store/types.js";
import type { AuditIdentity } from "./audit-event.js";
import { canonicalize, canonicalJson, sha256Hex, toJsonValue } from "./canonical.js";
import { encodedRecordingEventText, sealPayload, sessionHeadHash } from "./chain.js";
import { describeCause, EvidenceUnavailableError } from "./errors.js";
import type { RecordingEvent, RecordingEventKind, SessionHeader, SessionSeal } from "./records.js";
import { resolveRequestEvents } from "./request-reference.js";
import { signCanonical, signingKeyRecord, toSigner, type EvidenceSigner } from "./signing.js";

export interface SessionRecorderOptions {
  signingKey: Ed25519KeyPair | EvidenceSigner;
  /** `record()` returns false once this many bytes wait to be written (default 4 MiB). */
  highWaterBytes?: number;
  /** `record()` throws EvidenceUnavailableError beyond this (default 4 x highWaterBytes). */
  maxBufferedBytes?: number;
  /** Write at least this often while events wait (default 200 ms). */
  flushIntervalMs?: number;
  /** Most events per transaction (default 2000). */
  maxBatchEvents?: number;
}

export interface StartSession {
  sessionId: string;
  connection: string;
  protocol: string;
  identity?: AuditIdentity;
}

type Item =
  | { type: "session"; header: SessionHeader; bytes: number; done: Settle }
  | { type: "event"; event: EncodedRecordingEvent; bytes: number }
  | { type: "seal"; seal: SessionSeal; bytes: number; done: Settle };

interface Settle {
  resolve: () => void;
  reject: (e: Error) => void;
}

const RETRY_MAX_MS = 2000;

/**
 * Records sessions: per session an ordered, timed, hash-chained event stream, sealed with an Ed25519
 * signature when the session ends. One recorder serves all sessions of the process and batches their events
 * into shared transactions (a recording is durable at its seal, not at each event).
 *
 * Back-pressure follows Node streams: `record()` returns false when the recorder holds more than
 * highWaterBytes unwritten; the producer should stop reading its socket and `await recording.drain()`, which
 * rejects with EvidenceUnavailableError if the store fails meanwhile. A producer that ignores this gets
 * EvidenceUnavailableError from `record()` at maxBufferedBytes, so memory stays bounded either way.
 */
export class SessionRecorder {
  readonly #store: Store;
  readonly #signer: EvidenceSigner;
  readonly #highWater: number;
  readonly #maxBuffered: number;
  readonly #flushIntervalMs: number;
  readonly #maxBatch: number;
  #queue: Item[] = [];
  #buffered = 0;
  #keyStored = false;
  #flushing = false;
  #timer: NodeJS.Timeout | undefined;
  #retryMs = 0;
  #drainWaiters: Settle[] = [];
  #lastError: unknown;
  /** The last write failed; the next one that succeeds clears it. */
  #failing = false;
  #closed = false;
  readonly #active = new Set<string>();

  constructor(store: Store, options: SessionRecorderOptions) {
    this.#store = store;
    this.#signer = toSigner(options.signingKey);
    this.#highWater = options.highWaterBytes ?? 4 * 1024 * 1024;
    this.#maxBuffered = options.maxBufferedBytes ?? 4 * this.#highWater;
    this.#flushIntervalMs = options.flushIntervalMs ?? 200;
    this.#maxBatch = options.maxBatchEvents ?? 2000;
  }

  /** Bytes (canonical JSON) recorded but not yet written. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Starts a recording; resolves once the session row is durable. */
  async start(s: StartSession): Promise<SessionRecording> {
    this.#assertOpen(); // before the store is read: it may be closed too
    // a duplicate id would make the shared batch fail forever; refuse it here instead
    if (this.#active.has(s.sessionId) || (await this.#store.getSession(s.sessionId)) !== undefined) {
      throw new Error(`session ${s.sessionId} was already recorded`);
    }
    this.#assertOpen(); // closed while the store was read
    this.#active.add(s.sessionId);
    const header: SessionHeader = {
      session_id: s.sessionId,
      connection: s.connection,
      protocol: s.protocol,
      ...(s.identity ? { identity: toJsonValue(s.identity) } : {}),
      started_at: new Date().toISOString(),
    };
    const recording = new SessionRecording(this, header, sessionHeadHash(header), performance.now());
    await new Promise<void>((resolve, reject) => {
      this.#push({ type: "session", header, bytes: canonicalJson(header).length, done: { resolve, reject } }, true);
    });
    return recording;
  }

  /** @internal used by SessionRecording */
  enqueueEvent(event: EncodedRecordingEvent, bytes: number): boolean {
    const full = this.#full(bytes);
    if (full) throw full;
    this.#push({ type: "event", event, bytes }, false);
    return this.#buffered < this.#highWater;
  }

  /**
   * @internal What `record()` of an event of `bytes` would do now, without recording it: true (taken), false
   * (taken, past the high-water mark) or the error it would throw.
   */
  room(bytes: number): boolean | EvidenceUnavailableError {
    if (this.#closed) return new EvidenceUnavailableError("recorder is closed");
    return this.#full(bytes) ?? this.#buffered + bytes < this.#highWater;
  }

  #full(bytes: number): EvidenceUnavailableError | undefined {
    // one event alone always fits (memory stays bounded by the limit plus that event): else an event larger than
    // the limit could never be recorded, however long its producer waited
    if (this.#buffered > 0 && this.#buffered + bytes > this.#maxBuffered) {
      return new EvidenceUnavailableError(
        `recording buffer full (${this.#buffered} bytes unwritten${this.#lastError ? `: ${describeCause(this.#lastError)}` : ""})`,
      );
    }
    return undefined;
  }

  /** @internal */
  enqueueSeal(seal: SessionSeal): Promise<void> {
    this.#active.delete(seal.session_id);
    return new Promise<void>((resolve, reject) => {
      this.#push({ type: "seal", seal, bytes: 256, done: { resolve, reject } }, true);
    });
  }

  /**
   * Resolves when the unwritten bytes are below the high-water mark, or the recorder is closed. Rejects with
   * EvidenceUnavailableError ("recording unavailable: <cause>") as soon as a write fails while the caller waits:
   * on the first failure, as an audit append does, so that the producer refuses its request or ends its session
   * with an error its client can read instead of hanging on a store that may never come back. The queued events
   * stay queued and are retried (their hashes are already chained). Called while the store is failing, it does not
   * wait out the back-off: the write is retried now and the caller learns its outcome.
   */
  drain(): Promise<void> {
    // closed: the producer's next record() throws; it must not wait for a write that will never come
    if (this.#closed || this.#buffered < this.#highWater) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#drainWaiters.push({ resolve, reject });
      if (this.#failing) this.#schedule(0);
    });
  }

  /** Writes everything queued now; throws EvidenceUnavailableError if the store refuses. */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#flushing) await new Promise((r) => setTimeout(r, 2));
    while (this.#queue.length > 0) {
      if (!(await this.#flushOnce())) {
        throw new EvidenceUnavailableError(`recordings not written: ${describeCause(this.#lastError)}`, {
          cause: this.#lastError,
        });
      }
    }
  }

  /**
   * Writes what is queued; throws if that is not possible. Sessions still open stay unsealed. From now on the
   * recorder refuses new sessions, events and seals, and it never retries on a timer: its store is about to
   * close, and a retry loop against a closed store would keep the process alive.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#drainWaiters.splice(0)) w.resolve();
    try {
      await this.flush();
    } finally {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new EvidenceUnavailableError("recorder is closed");
  }

  #push(item: Item, urgent: boolean): void {
    this.#assertOpen();
    this.#queue.push(item);
    this.#buffered += item.bytes;
    if (urgent || this.#queue.length >= this.#maxBatch || this.#buffered >= this.#highWater) this.#schedule(0);
    else this.#schedule(this.#flushIntervalMs);
  }

  #schedule(delayMs: number): void {
    if (this.#flushing) return; // the running flush reschedules when it finishes
    if (this.#closed) return; // close() writes the rest itself, once
    if (this.#timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // #flushOnce keeps store failures for retry; anything else it throws is kept the same way
      this.#flushOnce().catch((err: unknown) => {
        this.#flushing = false;
        this.#lastError = err;
        this.#schedule(RETRY_MAX_MS);
      });
    }, delayMs);
  }

  async #flushOnce(): Promise<boolean> {
    if (this.#flushing || this.#queue.length === 0) return true;
    this.#flushing = true;
    const batch = this.#queue.slice(0, this.#maxBatch);
    let ok = false;
    try {
      await this.#store.writeRecording({
        sessions: batch.flatMap((i) => (i.type === "session" ? [i.header] : [])),
        encodedEvents: batch.flatMap((i) => (i.type === "event" ? [i.event] : [])),
        seals: batch.flatMap((i) => (i.type === "seal" ? [i.seal] : [])),
        ...(this.#keyStored ? {} : { signingKey: signingKeyRecord(this.#signer, new Date().toISOString()) }),
      });
      ok = true;
    } catch (err) {
      this.#lastError = err;
    }
    this.#flushing = false;
    if (ok) {
      this.#keyStored = true;
      this.#failing = false;
      this.#retryMs = 0;
      this.#queue.splice(0, batch.length);
      for (const i of batch) {
        this.#buffered -= i.bytes;
        if (i.type !== "event") i.done.resolve();
      }
      if (this.#buffered < this.#highWater) for (const w of this.#drainWaiters.splice(0)) w.resolve();
    } else {
      // keep the items (their hashes are already chained) and retry; tell the waiting starts, seals and drains now
      this.#failing = true;
      const e = new EvidenceUnavailableError(`recording unavailable: ${describeCause(this.#lastError)}`, {
        cause: this.#lastError,
      });
      for (const i of batch) if (i.type !== "event") i.done.reject(e);
      for (const w of this.#drainWaiters.splice(0)) w.reject(e);
      this.#retryMs = Math.min(RETRY_MAX_MS, Math.max(50, this.#retryMs * 2));
    }
    if (this.#queue.length > 0) {
      const urgent = this.#queue.some((i) => i.type !== "event") || this.#buffered >= this.#highWater;
      this.#schedule(ok ? (urgent || this.#queue.length >= this.#maxBatch ? 0 : this.#flushIntervalMs) : this.#retryMs);
    }
    return ok;
  }

  /** Events of a recording in order (works for any store, including one opened read-only). */
  readRecording(sessionId: string): AsyncIterable<RecordingEvent> {
    return readRecording(this.#store, sessionId);
  }

  /** @internal */
  sign(payload: unknown): { signature: string; key_id: string } {
    return { signature: signCanonical(this.#signer, payload), key_id: this.#signer.keyId };
  }
}

/** One session's recording. Not thread-safe by design: one producer per session (its adapter). */
export class SessionRecording {
  #seq = 0;
  #t = 0;
  #sealed: Promise<SessionSeal> | undefined;

  /** @internal created by SessionRecorder.start */
  constructor(
    private readonly recorder: SessionRecorder,
    readonly header: SessionHeader,
    private lastHash: string,
    private readonly startedAt: number,
  ) {}

  get sessionId(): string {
    return this.header.session_id;
  }

  get count(): number {
    return this.#seq;
  }

  /**
   * Records one event (data must be JSON-serialisable; pass bytes as text or base64). Returns false when the
   * producer should pause and `await drain()`. Throws after seal, or if the buffer limit is exceeded.
   */
  record(kind: RecordingEventKind, data?: unknown): boolean {
    if (this.#sealed) throw new Error(`session ${this.sessionId} recording is sealed`);
    // integer ms from the monotonic clock; Math.max guards the chain against any rounding step backwards
    this.#t = Math.max(this.#t, Math.floor(performance.now() - this.startedAt));
    // data is encoded once: that text is hashed (inside the event's canonical text) and stored verbatim
    const dataJson = data === undefined ? undefined : canonicalize(data);
    const event: EncodedRecordingEvent = {
      session_id: this.sessionId,
      seq: this.#seq + 1,
      t: this.#t,
      kind,
      data_json: dataJson ?? null,
      prev_hash: this.lastHash,
      hash: "",
    };
    const text = encodedRecordingEventText(event, dataJson);
    event.hash = sha256Hex(text);
    event.text = text;
    // enqueue first: if it throws (buffer full) the chain has not advanced
    const more = this.recorder.enqueueEvent(event, text.length + 64);
    this.#seq++;
    this.lastHash = event.hash;
    return more;
  }

  /**
   * Whether `record()` would take an event of about `bytes` now, without recording anything: true, false (it
   * would, but the producer should then wait for `drain()`), or the error `record()` would throw (sealed, buffer
   * full, recorder closed). Synchronous, so a caller can check it in the same task as something that must only
   * happen when the event can be recorded.
   */
  canRecord(bytes: number): boolean | Error {
    if (this.#sealed) return new Error(`session ${this.sessionId} recording is sealed`);
    return this.recorder.room(bytes);
  }

  /** See SessionRecorder.drain: rejects with EvidenceUnavailableError when the store fails meanwhile. */
  drain(): Promise<void> {
    return this.recorder.drain();
  }

  /** Ends the recording: signs {session_id, count, last_hash, ended_at, reason}; resolves once durable. */
  seal(reason: string): Promise<SessionSeal> {
    this.#sealed ??= (async () => {
      const payload = sealPayload({
        session_id: this.sessionId,
        count: this.#seq,
        last_hash: this.lastHash,
        ended_at: new Date().toISOString(),
        reason,
      });
      const seal: SessionSeal = { ...payload, ...this.recorder.sign(payload) };
      await this.recorder.enqueueSeal(seal);
      return seal;
    })();
    return this.#sealed;
  }
}

/**
 * A session's recorded events in order, paged from the store, as readers see them: a `request` event that refers
 * to its audit record (request-reference.ts) shows that record's request members (text, parameters...) in its
 * data, as events that carried them did. Verification reads the events as stored (readStoredRecording).
 */
export async function* readRecording(store: Store, sessionId: string, pageSize = 1000): AsyncIterable<RecordingEvent> {
  for await (const page of pages(store, sessionId, pageSize)) yield* await resolveRequestEvents(store, page);
}

/** A session's events exactly as stored (each hashes to its hash), paged from the store. */
export async function* readStoredRecording(
  store: Store,
  sessionId: string,
  pageSize = 1000,
): AsyncIterable<RecordingEvent> {
  for await (const page of pages(store, sessionId, pageSize)) yield* page;
}

async function* pages(store: Store, sessionId: string, pageSize: number): AsyncIterable<RecordingEvent[]> {
  let from = 1;
  for (;;) {
    const page = await store.readRecordingEvents(sessionId, { fromSeq: from, limit: pageSize });
    yield page;
    if (page.length < pageSize) return;
    from = (page.at(-1)?.seq ?? from) + 1;
  }
}
