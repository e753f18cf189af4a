import Database from "better-sqlite3";
import { indexEvidenceLog, type IndexOutcome, type IndexRequest } from "./log-indexer.js";

/** A compiled statement as it crosses the thread boundary: plain SQL text and positional parameters. */
export interface SqlStatement {
  sql: string;
  parameters: readonly unknown[];
}

/** Consecutive statements with the same SQL text: sent once, run once per parameter row. */
export interface SqlGroup {
  sql: string;
  rows: (readonly unknown[])[];
}

/**
 * Groups consecutive statements by SQL text, keeping their order. A group commit is mostly one insert repeated,
 * so the worker message carries each SQL text once instead of once per row (and nothing but SQL and values).
 */
export function groupStatements(statements: readonly SqlStatement[]): SqlGroup[] {
  const groups: SqlGroup[] = [];
  let last: SqlGroup | undefined;
  for (const s of statements) {
    if (last?.sql === s.sql) last.rows.push(s.parameters);
    else groups.push((last = { sql: s.sql, rows: [s.parameters] }));
  }
  return groups;
}

export interface SqlResult {
  rows: Record<string, unknown>[];
  changes?: number;
  lastInsertRowid?: number | bigint;
}

export interface SqliteOpenOptions {
  path: string;
  readonly: boolean;
  /** How long a write waits for another connection's lock before failing with SQLITE_BUSY. */
  busyTimeoutMs: number;
  /** What a resolved commit survives (default "fsync"); see EvidenceDurability. */
  durability?: EvidenceDurability;
  /**
   * `false`: this connection never checkpoints the WAL inside its own commits (`wal_autocheckpoint = 0`);
   * another connection must (a WalCheckpointer). Default true: SQLite checkpoints every 1000 WAL pages.
   */
  autoCheckpoint?: boolean;
  /**
   * `true`: SQLite does not fsync at commit even for durability `fsync`, because the caller fsyncs the WAL file
   * after each commit itself, off the event loop (WalSync). Default false.
   */
  walSyncedByCaller?: boolean;
}

/** What `PRAGMA wal_checkpoint(PASSIVE)` reports: WAL frames in total and how many of them are in the database. */
export interface WalCheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/**
 * What a committed write survives before the gateway acts on it. `fsync`: the WAL is fsynced at every commit,
 * so a resolved write survives power loss. `os`: the commit is written to the operating system (a gateway crash
 * or kill -9 loses nothing; a machine crash may lose the last commits) and fsynced at checkpoints, which keeps
 * the database consistent either way (SQLite's synchronous=NORMAL in WAL mode).
 */
export type EvidenceDurability = "fsync" | "os";

const STATEMENT_CACHE_LIMIT = 256;

/**
 * One better-sqlite3 connection with a prepared-statement cache. Runs either inside the writer worker or
 * in-process; both see the same behaviour. Synchronous by nature: whoever calls it blocks for the fsync.
 */
export class SqliteSession {
  readonly #db: Database.Database;
  readonly #cache = new Map<string, Database.Statement>();
  // built once: better-sqlite3's transaction() defines a dozen properties on every call
  readonly #runGroups: Database.Transaction<(groups: readonly SqlGroup[]) => number>;

  constructor(options: SqliteOpenOptions) {
    this.#db = new Database(options.path, {
      readonly: options.readonly,
      fileMustExist: options.readonly,
      timeout: options.busyTimeoutMs,
    });
    if (!options.readonly) this.#db.pragma("journal_mode = WAL");
    // FULL: in WAL mode the WAL is fsynced at every commit, so a resolved write survives power loss; NORMAL:
    // fsynced at checkpoints only (durability os, or a caller that fsyncs the WAL itself)
    const commitFsync = options.durability !== "os" && options.walSyncedByCaller !== true;
    this.#db.pragma(commitFsync ? "synchronous = FULL" : "synchronous = NORMAL");
    if (options.autoCheckpoint === false) this.#db.pragma("wal_autocheckpoint = 0");
    this.#runGroups = this.#db.transaction((groups: readonly SqlGroup[]) => {
      let changes = 0;
      for (const g of groups) {
        const stmt = this.#prepare(g.sql);
        for (const row of g.rows) changes += stmt.run(...row).changes;
      }
      return changes;
    });
  }

  #prepare(sql: string): Database.Statement {
    let stmt = this.#cache.get(sql);
    if (stmt === undefined) {
      // statements with varying shapes (multi-row inserts) could grow the cache; a reset is cheap
      if (this.#cache.size >= STATEMENT_CACHE_LIMIT) this.#cache.clear();
      stmt = this.#db.prepare(sql);
      this.#cache.set(sql, stmt);
    }
    return stmt;
  }

  query(statement: SqlStatement): SqlResult {
    const stmt = this.#prepare(statement.sql);
    if (stmt.reader) return { rows: stmt.all(...statement.parameters) as Record<string, unknown>[] };
    const info = stmt.run(...statement.parameters);
    return { rows: [], changes: info.changes, lastInsertRowid: info.lastInsertRowid };
  }

  /** Runs all statements in one IMMEDIATE transaction (takes the write lock up front, so no upgrade deadlock). */
  batch(statements: readonly SqlStatement[]): number {
    return this.batchGroups(groupStatements(statements));
  }

  /** `batch` for statements already grouped (what the writer worker receives). */
  batchGroups(groups: readonly SqlGroup[]): number {
    return this.#runGroups.immediate(groups);
  }

  /** Indexes the evidence log's segments beyond the watermarks (log-indexer.ts). */
  indexLog(request: IndexRequest): IndexOutcome {
    return indexEvidenceLog(this.#db, request);
  }

  /** Turns this connection's own WAL checkpoints (inside its commits, every 1000 pages) on or off. */
  setAutoCheckpoint(on: boolean): void {
    this.#db.pragma(on ? "wal_autocheckpoint = 1000" : "wal_autocheckpoint = 0");
  }

  close(): void {
    this.#cache.clear();
    if (this.#db.open) this.#db.close();
  }
}
