import type { Ed25519KeyPair } from "../keys.js";
import type { Store } from "../store/types.js";
import type { AuditJsonText } from "../store/types.js";
import type { AuditEventInput, AuditIdentity, AuditRecord } from "./audit-event.js";
import { canonicalize, canonicalizedExactly, sha256Hex, ZERO_HASH } from "./canonical.js";
import { checkpointPayload, encodedAuditRecordText } from "./chain.js";
import { describeCause, EvidenceUnavailableError } from "./errors.js";
import type { Checkpoint } from "./records.js";
import { signCheckpoint } from "./segments/note.js";
import { signCanonical, signingKeyRecord, toSigner, type EvidenceSigner } from "./signing.js";

export interface AuditLogOptions {
  /** Signs checkpoints; its public half is stored beside the log. */
  signingKey: Ed25519KeyPair | EvidenceSigner;
  /** Sign a checkpoint once this many records were appended since the last one (default 1000). */
  checkpointEvery?: number;
  /** ...and at most this long after the first unsigned record (default 5000 ms; 0 = only by count/close). */
  checkpointIntervalMs?: number;
  /** Most records per transaction (default 1000). */
  maxBatch?: number;
  /** Appends waiting beyond this are refused at once instead of queueing (default 100000). */
  maxQueued?: number;
  /** Wall clock in ms (tests). */
  now?: () => number;
  /**
   * Called with each batch once it is durable (sink forwarding). It runs on the commit path, so it must only
   * enqueue; an exception it throws is swallowed rather than failing appends that are already committed.
   */
  onCommitted?: (records: readonly AuditRecord[]) => void;
  /** Called with each checkpoint once it is durable (sent to the sinks, so a copy outside the data dir exists). */
  onCheckpoint?: (checkpoint: Checkpoint) => void;
}

export interface AuditLogStats {
  commits: number;
  records: number;
  checkpoints: number;
  failedCommits: number;
  largestBatch: number;
}

type Body = Omit<AuditRecord, "seq" | "time" | "prev_hash" | "hash">;

/** An event ready to chain: its fields, plus identity/data as canonical JSON (hashed and stored as is). */
interface Encoded {
  body: Body;
  identity: string | undefined;
  data: string | undefined;
}

interface Waiting extends Encoded {
  resolve: (r: AuditRecord) => void;
  reject: (e: Error) => void;
}

interface Head {
  seq: number;
  hash: string;
  timeMs: number;
}

const STRING_FIELDS = ["connection", "session_id", "decision", "rule"] as const;

interface EncodedIdentity {
  text: string;
  value: AuditIdentity;
}

/** A session's identity is one frozen object appended with every event of the session: encoded once. */
const frozenIdentities = new WeakMap<object, EncodedIdentity>();

function encodeIdentity(identity: AuditIdentity): EncodedIdentity | undefined {
  const frozen = Object.isFrozen(identity) && Object.isFrozen(identity.groups);
  let encoded = frozen ? frozenIdentities.get(identity) : undefined;
  if (encoded) return encoded;
  const text = canonicalize(identity);
  if (text === undefined) return undefined;
  encoded = { text, value: Object.freeze(JSON.parse(text) as AuditIdentity) };
  if (frozen) frozenIdentities.set(identity, encoded);
  return encoded;
}

/**
 * Copies the known fields as plain JSON, so the stored record hashes the same when it is read back. identity
 * and data are encoded once, here: that text is hashed and stored. The record keeps the caller's `data` object
 * when it was plain JSON already (callers must not change it after appending), else a copy parsed from the text.
 */
function normalize(event: AuditEventInput): Encoded {
  if (typeof event?.type !== "string" || event.type === "") throw new TypeError("audit event needs a type");
  const body: Body = { type: event.type };
  let identity: string | undefined;
  if (event.identity !== undefined && event.identity !== null) {
    const encoded = encodeIdentity(event.identity);
    identity = encoded?.text;
    if (encoded) body.identity = encoded.value;
  }
  for (const f of STRING_FIELDS) {
    const v = event[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") throw new TypeError(`audit event ${f} must be a string`);
    (body as Record<string, unknown>)[f] = v;
  }
  // encoded now, so hashing at commit time cannot throw
  const data = event.data === undefined ? undefined : canonicalize(event.data);
  // the caller's object when it was plain JSON already (the usual case): parsing the text back would copy it
  if (data !== undefined) {
    body.data = canonicalizedExactly() ? event.data! : (JSON.parse(data) as Record<string, unknown>);
  }
  return { body, identity, data };
}

/**
 * A record with its chain fields, members added in one fixed order, so records of the same kind share one
 * object shape (an object spread of the varying body was the commit loop's largest self time in a profile under
 * pgbench). `hash` is set by the caller once computed.
 */
function chainedRecord(writer: string | undefined, seq: number, time: string, b: Body, prevHash: string): AuditRecord {
  const r = (writer === undefined ? { seq, time, type: b.type } : { writer, seq, time, type: b.type }) as AuditRecord;
  if (b.identity !== undefined) r.identity = b.identity;
  if (b.connection !== undefined) r.connection = b.connection;
  if (b.session_id !== undefined) r.session_id = b.session_id;
  if (b.decision !== undefined) r.decision = b.decision;
  if (b.rule !== undefined) r.rule = b.rule;
  if (b.data !== undefined) r.data = b.data;
  r.prev_hash = prevHash;
  return r;
}

/**
 * The tamper-evident audit log and its single sequencer: it alone assigns seq, time, prev_hash and hash.
 *
 * Group commit: the first append starts a transaction; appends that arrive while it is in flight wait and go
 * together into the next one, so one fsync serves many events. An append resolves only after its transaction
 * committed. If a commit fails, every append in it rejects with EvidenceUnavailableError, the in-memory head
 * stays where the store is, and the next append tries again (re-reading the head first, in case the failed
 * commit did reach the disk).
 */
export class AuditLog {
  readonly #store: Store;
  readonly #signer: EvidenceSigner;
  readonly #every: number;
  readonly #maxBatch: number;
  readonly #maxQueued: number;
  readonly #now: () => number;
  readonly #onCommitted: ((records: readonly AuditRecord[]) => void) | undefined;
  readonly #onCheckpoint: ((checkpoint: Checkpoint) => void) | undefined;
  readonly #writer: string | undefined;
  readonly #timer: NodeJS.Timeout | undefined;

  #head: Head = { seq: 0, hash: ZERO_HASH, timeMs: 0 };
  #checkpointSeq = 0;
  #keyStored = false;
  #resync = false;
  #wantCheckpoint = false;
  #queue: Waiting[] = [];
  #running = false;
  #idleWaiters: (() => void)[] = [];
  #closed = false;
  #lastError: unknown;
  /** The last commit failed (and none succeeded since). */
  #failing = false;
  readonly #stats: AuditLogStats = { commits: 0, records: 0, checkpoints: 0, failedCommits: 0, largestBatch: 0 };

  private constructor(store: Store, options: AuditLogOptions) {
    this.#store = store;
    this.#signer = toSigner(options.signingKey);
    this.#every = Math.max(1, options.checkpointEvery ?? 1000);
    this.#maxBatch = Math.max(1, options.maxBatch ?? 1000);
    this.#maxQueued = options.maxQueued ?? 100_000;
    this.#now = options.now ?? Date.now;
    this.#onCommitted = options.onCommitted;
    this.#onCheckpoint = options.onCheckpoint;
    this.#writer = store.writer;
    const interval = options.checkpointIntervalMs ?? 5000;
    if (interval > 0) {
      this.#timer = setInterval(() => this.#onTimer(), interval);
      this.#timer.unref();
    }
  }

  /** Opens the log on a store, continuing the chain from the last stored record. */
  static async open(store: Store, options: AuditLogOptions): Promise<AuditLog> {
    const log = new AuditLog(store, options);
    try {
      await log.#load();
    } catch (err) {
      log.#stopTimer();
      throw new EvidenceUnavailableError(`audit log unavailable: ${describeCause(err)}`, { cause: err });
    }
    return log;
  }

  async #load(): Promise<void> {
    const [last, cp, keys] = await Promise.all([
      this.#store.lastAudit(),
      this.#store.lastCheckpoint(),
      this.#store.listSigningKeys(),
    ]);
    this.#head = last
      ? { seq: last.seq, hash: last.hash, timeMs: Date.parse(last.time) || 0 }
      : { seq: 0, hash: ZERO_HASH, timeMs: 0 };
    this.#checkpointSeq = cp?.seq ?? 0;
    this.#keyStored = keys.some((k) => k.key_id === this.#signer.keyId);
    this.#resync = false;
  }

  /** The last committed record's seq and hash. */
  get head(): { seq: number; hash: string } {
    return { seq: this.#head.seq, hash: this.#head.hash };
  }

  get stats(): Readonly<AuditLogStats> {
    return { ...this.#stats };
  }

  get keyId(): string {
    return this.#signer.keyId;
  }

  /**
   * Why evidence cannot be written right now: the cause of the last commit, if it failed (the next successful one
   * clears it). Undefined while the log works. What /healthz reports.
   */
  get failure(): string | undefined {
    return this.#failing ? describeCause(this.#lastError) : undefined;
  }

  /** Appends one event; resolves with the stored record once it is durable. */
  append(event: AuditEventInput): Promise<AuditRecord> {
    if (this.#closed) return Promise.reject(new EvidenceUnavailableError("audit log is closed"));
    let encoded: Encoded;
    try {
      encoded = normalize(event);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (this.#queue.length >= this.#maxQueued) {
      return Promise.reject(new EvidenceUnavailableError("audit log unavailable: too many appends waiting"));
    }
    return new Promise<AuditRecord>((resolve, reject) => {
      this.#queue.push({ body: encoded.body, identity: encoded.identity, data: encoded.data, resolve, reject });
      this.#kick();
    });
  }

  /** Writes a checkpoint now if records were appended since the last one; resolves when it is durable. */
  async checkpoint(): Promise<Checkpoint | undefined> {
    this.#wantCheckpoint = true;
    this.#kick();
    await this.#idle();
    if (this.#head.seq > this.#checkpointSeq) {
      throw new EvidenceUnavailableError(`checkpoint not written: ${describeCause(this.#lastError)}`, {
        cause: this.#lastError,
      });
    }
    return this.#head.seq === 0 ? undefined : this.#store.lastCheckpoint();
  }

  /** Commits what is queued, signs a final checkpoint and refuses further appends. The store stays open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimer();
    await this.checkpoint();
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  #onTimer(): void {
    if (this.#head.seq > this.#checkpointSeq) {
      this.#wantCheckpoint = true;
      this.#kick();
    }
  }

  #idle(): Promise<void> {
    return this.#running ? new Promise((resolve) => this.#idleWaiters.push(resolve)) : Promise.resolve();
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    // the loop's next check phase, so appends made by every socket read of this turn share the first transaction
    // (an in-process store commits synchronously: a microtask would commit each connection's record alone)
    setImmediate(() => {
      // #commit turns store failures into refusals; a throw here is a bug, and waiting appends must not hang on it
      this.#drain().catch((err: unknown) => {
        this.#running = false;
        this.#fail(this.#queue.splice(0), err);
      });
    });
  }

  async #drain(): Promise<void> {
    for (;;) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      const cpDue = this.#wantCheckpoint && this.#head.seq > this.#checkpointSeq;
      if (batch.length === 0 && !cpDue) break;
      await this.#commit(batch);
    }
    // cleared in the same synchronous step as the emptiness check, so no append can be stranded
    this.#wantCheckpoint = false;
    this.#running = false;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  async #commit(batch: Waiting[]): Promise<void> {
    try {
      if (this.#resync) await this.#load();
    } catch (err) {
      this.#fail(batch, err);
      return;
    }
    let { seq, hash, timeMs } = this.#head;
    // time never goes backwards in the log, even if the wall clock does
    timeMs = Math.max(timeMs, this.#now());
    const time = new Date(timeMs).toISOString();
    const records: AuditRecord[] = [];
    const json: AuditJsonText[] = [];
    const texts: string[] = [];
    const writer = this.#writer;
    for (const w of batch) {
      const record = chainedRecord(writer, ++seq, time, w.body, hash);
      // encoded once: this text is hashed and, in an evidence log, written as it is
      const text = encodedAuditRecordText(record, w.identity, w.data);
      hash = sha256Hex(text);
      record.hash = hash;
      records.push(record);
      json.push({ identity: w.identity ?? null, data: w.data ?? null });
      texts.push(text);
    }
    let checkpoint: Checkpoint | undefined;
    const dueByCount = seq - this.#checkpointSeq >= this.#every;
    if (seq > this.#checkpointSeq && (dueByCount || this.#wantCheckpoint)) {
      const signedAt = new Date(this.#now()).toISOString();
      if (writer === undefined) {
        const payload = checkpointPayload({ seq, hash, time: signedAt });
        checkpoint = { ...payload, signature: signCanonical(this.#signer, payload), key_id: this.#signer.keyId };
      } else {
        checkpoint = signCheckpoint(this.#signer, { writer, seq, hash, time: signedAt });
      }
    }
    try {
      await this.#store.commitAudit({
        records,
        json,
        texts,
        ...(checkpoint ? { checkpoint } : {}),
        ...(this.#keyStored ? {} : { signingKey: signingKeyRecord(this.#signer, time) }),
      });
    } catch (err) {
      this.#resync = true;
      this.#wantCheckpoint = false; // the timer or close() asks again; never spin on a dead store
      this.#fail(batch, err);
      return;
    }
    this.#head = { seq, hash, timeMs };
    this.#keyStored = true;
    this.#failing = false;
    this.#stats.commits++;
    this.#stats.records += records.length;
    this.#stats.largestBatch = Math.max(this.#stats.largestBatch, records.length);
    if (checkpoint) {
      this.#checkpointSeq = checkpoint.seq;
      this.#wantCheckpoint = false;
      this.#stats.checkpoints++;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(records[i]!);
    try {
      this.#onCommitted?.(records);
      if (checkpoint) this.#onCheckpoint?.(checkpoint);
    } catch {
      // forwarding is best effort by design: the records are in the store and sinks backfill from it
    }
  }

  #fail(batch: Waiting[], err: unknown): void {
    this.#lastError = err;
    this.#failing = true;
    this.#stats.failedCommits++;
    const e = new EvidenceUnavailableError(`audit log unavailable: ${describeCause(err)}`, { cause: err });
    for (const w of batch) w.reject(e);
  }
}
