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
} from "./sqlite-session.js";

/** Asynchronous access to one SQLite connection, wherever it runs. */
export interface SqliteClient {
  query(statement: SqlStatement): Promise<SqlResult>;
  /** One transaction; resolves after the commit is durable. */
  batch(statements: readonly SqlStatement[]): Promise<number>;
  close(): Promise<void>;
}

/** Runs SQLite on the calling thread: simplest, but each commit's fsync blocks the event loop. */
export class InProcessSqliteClient implements SqliteClient {
  readonly #session: SqliteSession;
  constructor(options: SqliteOpenOptions) {
    this.#session = new SqliteSession(options);
  }
  query(statement: SqlStatement): Promise<SqlResult> {
    try {
      return Promise.resolve(this.#session.query(statement));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
  batch(statements: readonly SqlStatement[]): Promise<number> {
    try {
      return Promise.resolve(this.#session.batch(statements));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
  close(): Promise<void> {
    this.#session.close();
    return Promise.resolve();
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
          void worker.terminate();
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
