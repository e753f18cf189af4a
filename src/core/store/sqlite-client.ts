import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { SqliteStoreError, type WorkerRequest, type WorkerResponse } from "./sqlite-protocol.js";
import {
  groupStatements,
  SqliteSession,
  type SqlResult,
  type SqliteOpenOptions,
  type SqlStatement,
  type WalCheckpointResult,
} from "./sqlite-session.js";
import type { IndexOutcome, IndexRequest } from "./log-indexer.js";
import { WalSync, type FdatasyncFn } from "./wal-sync.js";

/** Asynchronous access to one SQLite connection, wherever it runs. */
export interface SqliteClient {
  query(statement: SqlStatement): Promise<SqlResult>;
  /** One transaction; resolves after the commit is durable. */
  batch(statements: readonly SqlStatement[]): Promise<number>;
  close(): Promise<void>;
}

/**
 * Runs SQLite on the calling thread: no thread hop and warm caches. Commits do not fsync on the event loop:
 * with durability `os` they only reach the OS; with `walSyncedByCaller` (durability `fsync`) each write resolves
 * after a WalSync fdatasync of the WAL on libuv's thread pool. SQLite's own checkpoints, which fsync, are
 * moved to a worker thread by `startCheckpointer`.
 */
export class InProcessSqliteClient implements SqliteClient {
  readonly #session: SqliteSession;
  readonly #walSync: WalSync | undefined;
  #checkpointer: WalCheckpointer | undefined;
  #paused: Promise<void> | undefined;
  constructor(options: SqliteOpenOptions, hooks: { fdatasync?: FdatasyncFn } = {}) {
    this.#session = new SqliteSession(options);
    if (options.walSyncedByCaller === true && !options.readonly) {
      this.#walSync = new WalSync(`${options.path}-wal`, hooks.fdatasync);
    }
  }

  /**
   * Checkpoints the WAL every `everyMs` from a worker thread's own connection instead of inside this
   * connection's commits (call it on a connection opened with `autoCheckpoint: false`). If the thread fails,
   * this connection checkpoints itself again until the thread works.
   */
  async startCheckpointer(options: SqliteOpenOptions, everyMs: number): Promise<void> {
    if (this.#checkpointer !== undefined) return;
    // the thread's connection syncs what it checkpoints itself (it never writes rows)
    const { walSyncedByCaller: _mine, ...own } = options;
    const checkpointer = new WalCheckpointer(own, everyMs, {
      onHealth: (ok) => this.#session.setAutoCheckpoint(!ok),
      whileWritesWait: (fn) => this.#whilePaused(fn),
    });
    await checkpointer.start();
    this.#checkpointer = checkpointer;
  }

  /** What the checkpoint thread did so far (undefined without one). */
  get checkpointStats(): Readonly<WalCheckpointStats> | undefined {
    return this.#checkpointer?.stats;
  }

  /** fdatasync calls of the WAL so far (undefined when SQLite syncs its own commits). */
  get walSyncs(): number | undefined {
    return this.#walSync?.syncs;
  }

  query(statement: SqlStatement): Promise<SqlResult> {
    if (this.#paused !== undefined) return this.#paused.then(() => this.query(statement));
    let result: SqlResult;
    try {
      result = this.#session.query(statement);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    // a statement that wrote (changes is set for non-readers) is durable only after the WAL sync
    return result.changes === undefined ? Promise.resolve(result) : this.#durable(result);
  }
  batch(statements: readonly SqlStatement[]): Promise<number> {
    if (this.#paused !== undefined) return this.#paused.then(() => this.batch(statements));
    let changes: number;
    try {
      changes = this.#session.batch(statements);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.#durable(changes);
  }

  #durable<T>(value: T): Promise<T> {
    return this.#walSync === undefined ? Promise.resolve(value) : this.#walSync.sync().then(() => value);
  }

  /**
   * Holds this connection's statements (they wait, the event loop does not) while `fn` runs. The checkpoint
   * thread catches up with the WAL's last frames this way: under steady writes it never would otherwise, and
   * SQLite restarts the WAL from its beginning only after a checkpoint copied all of it.
   */
  async #whilePaused<T>(fn: () => Promise<T>): Promise<T> {
    let resume!: () => void;
    this.#paused = new Promise<void>((r) => (resume = r));
    try {
      return await fn();
    } finally {
      this.#paused = undefined;
      resume();
    }
  }
  async close(): Promise<void> {
    await this.#walSync?.close();
    // the thread first: this connection is then the last one, and its close checkpoints and removes the WAL
    await this.#checkpointer?.close();
    this.#checkpointer = undefined;
    this.#session.close();
  }
}

type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, "id"> : never) : never;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * Compiled dist/ ships sqlite-worker.js beside this module. When running from .ts sources (vitest, tsx) the
 * worker is .ts too, so it first registers tsx's loader inside the worker thread (loader hooks registered in
 * the main thread do not reach workers on Node 20).
 */
function spawnWorker(options: SqliteOpenOptions): Worker {
  const here = import.meta.url;
  if (!here.endsWith(".ts")) return new Worker(new URL("./sqlite-worker.js", here), { workerData: options });
  const require = createRequire(here);
  const tsxPkgPath = require.resolve("tsx/package.json");
  const tsxPkg = JSON.parse(readFileSync(tsxPkgPath, "utf8")) as {
    exports: Record<string, { import?: { default?: string } }>;
  };
  const apiRel = tsxPkg.exports["./esm/api"]?.import?.default;
  if (apiRel === undefined) throw new Error("cannot locate tsx/esm/api to run the .ts store worker");
  const api = pathToFileURL(join(dirname(tsxPkgPath), apiRel)).href;
  const target = new URL("./sqlite-worker.ts", here).href;
  const code =
    `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(target)}); })` +
    `.catch((e) => { require("node:worker_threads").parentPort.postMessage({ id: 0, ok: false, ` +
    `error: { name: "Error", message: "store worker failed to load: " + (e && e.message) } }); });`;
  return new Worker(code, { eval: true, workerData: options });
}

/**
 * Runs SQLite in a worker thread that owns the connection. One message per query or per transaction batch.
 * If the worker dies, pending calls fail and the next call starts a fresh worker (the store recovers once
 * the cause is gone).
 */
export class WorkerSqliteClient implements SqliteClient {
  readonly #options: SqliteOpenOptions;
  #worker: Worker | undefined;
  #ready: Promise<void> | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  constructor(options: SqliteOpenOptions) {
    this.#options = options;
  }

  /** Starts the worker and waits until it has opened the database (so open errors surface at openStore). */
  start(): Promise<void> {
    return this.#ensureWorker().ready;
  }

  #ensureWorker(): { worker: Worker; ready: Promise<void> } {
    if (this.#worker !== undefined && this.#ready !== undefined) return { worker: this.#worker, ready: this.#ready };
    const worker = spawnWorker(this.#options);
    this.#worker = worker;
    let settleReady!: { resolve: () => void; reject: (e: Error) => void };
    const ready = new Promise<void>((resolve, reject) => (settleReady = { resolve, reject }));
    // the caller may not await readiness (it awaits its own request); avoid an unhandled rejection
    ready.catch(() => undefined);
    this.#ready = ready;
    worker.on("message", (msg: WorkerResponse) => {
      if (msg.id === 0) {
        if (this.#pending.size === 0) worker.unref();
        if (msg.ok) settleReady.resolve();
        else {
          const err = new SqliteStoreError(msg.error);
          settleReady.reject(err);
          this.#failAll(err);
          // the worker failed to open the store: its exit status adds nothing to the error already reported
          worker.terminate().catch(() => undefined);
        }
        return;
      }
      const p = this.#pending.get(msg.id);
      if (p === undefined) return;
      this.#pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new SqliteStoreError(msg.error));
      if (this.#pending.size === 0) worker.unref();
    });
    const onGone = (err: Error): void => {
      if (this.#worker === worker) {
        this.#worker = undefined;
        this.#ready = undefined;
      }
      settleReady.reject(err);
      this.#failAll(err);
    };
    worker.on("error", (err) => onGone(err));
    worker.on("exit", (code) => onGone(new Error(`store worker exited (code ${code})`)));
    // referenced until it has opened the database (someone may be awaiting that); idle workers are unref'd
    return { worker, ready };
  }

  #failAll(err: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
  }

  #call(req: RequestBody): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error("store is closed"));
    const { worker } = this.#ensureWorker();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // a pending request must keep the process alive until it is answered
      worker.ref();
      worker.postMessage({ ...req, id } as WorkerRequest);
    });
  }

  async query(statement: SqlStatement): Promise<SqlResult> {
    return (await this.#call({ op: "query", statement })) as SqlResult;
  }

  async batch(statements: readonly SqlStatement[]): Promise<number> {
    return (await this.#call({ op: "batch", groups: groupStatements(statements) })) as number;
  }

  /** Has the worker index the evidence log's segments up to the given limits (log-indexer.ts). */
  async indexLog(request: IndexRequest): Promise<IndexOutcome> {
    return (await this.#call({ op: "index", request })) as IndexOutcome;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const worker = this.#worker;
    if (worker !== undefined) {
      try {
        await this.#call({ op: "close" });
      } catch {
        // closing a dead worker is fine
      }
      await worker.terminate();
    }
    this.#closed = true;
  }
}

export interface WalCheckpointStats {
  /** Checkpoints (PASSIVE, in the thread) that found WAL frames to copy into the database. */
  checkpoints: number;
  /** Checkpoints run while the writer waited, to copy the WAL's last frames so that it restarts. */
  catchUps: number;
  /** Checkpoint calls that failed (the writer then checkpoints itself until one succeeds). */
  failures: number;
  /** The most WAL frames seen at a checkpoint (how far the WAL grew between two). */
  maxWalFrames: number;
  lastError?: string;
}

/** WAL frames (pages) past which a checkpoint also catches up with the writer, so the WAL restarts (SQLite's default autocheckpoint). */
const RESTART_FRAMES = 1000;
/** Writes never wait longer than this for a catch-up checkpoint (a stuck thread must not stop the store). */
const CATCH_UP_MAX_MS = 1000;

interface CheckpointerHooks {
  /** false: the thread failed; the writer should checkpoint itself until it works again (true). */
  onHealth: (ok: boolean) => void;
  /** Runs `fn` while the writer's statements wait. */
  whileWritesWait: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * Checkpoints the WAL of an in-process writer from its own connection in a worker thread, so the checkpoint's
 * writes and fsyncs do not block the writer's event loop. Every `everyMs`: a PASSIVE checkpoint, which never
 * waits for and never blocks the writer, copies what the WAL holds. Under steady writes it never copies all of
 * it (new commits land meanwhile), and SQLite only restarts the WAL from its beginning when all was copied: so
 * once the WAL holds more than RESTART_FRAMES, a second PASSIVE checkpoint runs while the writer's statements
 * wait (queued promises; the event loop runs on) and copies the few frames the first one missed. The timer lives
 * in this thread and sends one message per checkpoint: if the worker dies, the next tick starts a new one.
 */
class WalCheckpointer {
  readonly #client: WorkerSqliteClient;
  readonly #everyMs: number;
  readonly #hooks: CheckpointerHooks;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #healthy = true;
  #last: WalCheckpointResult = { busy: 0, log: 0, checkpointed: 0 };
  readonly stats: WalCheckpointStats = { checkpoints: 0, catchUps: 0, failures: 0, maxWalFrames: 0 };

  constructor(options: SqliteOpenOptions, everyMs: number, hooks: CheckpointerHooks) {
    this.#client = new WorkerSqliteClient({ ...options, readonly: false });
    this.#everyMs = Math.max(1, everyMs);
    this.#hooks = hooks;
  }

  async start(): Promise<void> {
    await this.#client.start();
    this.#timer = setInterval(() => {
      this.#inFlight ??= this.#tick().finally(() => (this.#inFlight = undefined));
    }, this.#everyMs);
    this.#timer.unref();
  }

  async #checkpoint(): Promise<WalCheckpointResult> {
    const res = await this.#client.query({ sql: "PRAGMA wal_checkpoint(PASSIVE)", parameters: [] });
    return res.rows[0] as unknown as WalCheckpointResult;
  }

  async #tick(): Promise<void> {
    try {
      const r = await this.#checkpoint();
      this.stats.maxWalFrames = Math.max(this.stats.maxWalFrames, r.log);
      if (r.checkpointed > 0 && (r.log !== this.#last.log || r.checkpointed !== this.#last.checkpointed)) {
        this.stats.checkpoints++;
      }
      this.#last = r;
      if (r.log >= RESTART_FRAMES) {
        let timer: NodeJS.Timeout | undefined;
        await this.#hooks.whileWritesWait(() =>
          Promise.race([
            this.#checkpoint().then((c) => {
              this.#last = c;
              this.stats.catchUps++;
            }),
            new Promise<void>((resolve) => (timer = setTimeout(resolve, CATCH_UP_MAX_MS))),
          ]).finally(() => clearTimeout(timer)),
        );
      }
      this.#health(true);
    } catch (err) {
      this.stats.failures++;
      this.stats.lastError = err instanceof Error ? err.message : String(err);
      this.#health(false);
    }
  }

  #health(ok: boolean): void {
    if (ok === this.#healthy) return;
    this.#healthy = ok;
    try {
      this.#hooks.onHealth(ok);
    } catch {
      // the writer is closing or failing; its own errors surface on its next commit
    }
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
    await this.#client.close();
  }
}
