import type { IndexOutcome, IndexRequest } from "./log-indexer.js";
import type { SqlGroup, SqlResult, SqlStatement } from "./sqlite-session.js";

/** Messages from the store to its SQLite writer worker. */
export type WorkerRequest =
  | { id: number; op: "query"; statement: SqlStatement }
  | { id: number; op: "batch"; groups: SqlGroup[] }
  | { id: number; op: "index"; request: IndexRequest }
  | { id: number; op: "close" };

export interface SerializedError {
  message: string;
  name: string;
  code?: string;
}

/** Replies; id 0 is the worker's own start-up outcome. */
export type WorkerResponse =
  | { id: number; ok: true; result?: SqlResult | number | IndexOutcome }
  | { id: number; ok: false; error: SerializedError };

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { message: err.message, name: err.name, ...(typeof code === "string" ? { code } : {}) };
  }
  return { message: String(err), name: "Error" };
}

export class SqliteStoreError extends Error {
  readonly code: string | undefined;
  constructor(e: SerializedError) {
    super(e.message);
    this.name = e.name === "SqliteError" ? "SqliteError" : "SqliteStoreError";
    this.code = e.code;
  }
}
