import {
  CompiledQuery,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
} from "kysely";
import type { SqliteClient } from "./sqlite-client.js";
import type { SqlStatement } from "./sqlite-session.js";

/** SQLite has one connection; whoever holds it (a kysely transaction or a batch) must finish first. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  async lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.#tail;
    this.#tail = prev.then(() => next);
    await prev;
    return release;
  }
}

class ClientConnection implements DatabaseConnection {
  constructor(readonly client: SqliteClient) {}
  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const res = await this.client.query({ sql: compiled.sql, parameters: compiled.parameters });
    return {
      rows: res.rows as R[],
      ...(res.changes !== undefined ? { numAffectedRows: BigInt(res.changes) } : {}),
      ...(res.lastInsertRowid !== undefined ? { insertId: BigInt(res.lastInsertRowid) } : {}),
    };
  }
  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error("streaming is not supported; page with limit/offset by key");
  }
}

class ClientDriver implements Driver {
  readonly #mutex: Mutex;
  readonly #connection: ClientConnection;
  #release: (() => void) | undefined;
  constructor(client: SqliteClient, mutex: Mutex) {
    this.#connection = new ClientConnection(client);
    this.#mutex = mutex;
  }
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    this.#release = await this.#mutex.lock();
    return this.#connection;
  }
  async beginTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw("begin immediate"));
  }
  async commitTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw("commit"));
  }
  async rollbackTransaction(c: DatabaseConnection): Promise<void> {
    await c.executeQuery(CompiledQuery.raw("rollback"));
  }
  async releaseConnection(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }
  async destroy(): Promise<void> {
    await this.#connection.client.close();
  }
}

/**
 * A kysely dialect for SQLite behind a SqliteClient (worker thread or in-process). `batch` runs compiled
 * statements as one transaction in a single round trip, which is what group commit needs.
 */
export class ClientSqliteDialect implements Dialect {
  readonly #client: SqliteClient;
  readonly #mutex = new Mutex();
  constructor(client: SqliteClient) {
    this.#client = client;
  }
  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }
  createDriver(): Driver {
    return new ClientDriver(this.#client, this.#mutex);
  }
  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }
  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
  async batch(statements: readonly SqlStatement[]): Promise<void> {
    const release = await this.#mutex.lock();
    try {
      await this.#client.batch(statements);
    } finally {
      release();
    }
  }
}
