import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { Kysely } from "kysely";
import { KyselyStore } from "./kysely-store.js";
import { migrateToLatest } from "./migrations.js";
import type { Database } from "./schema.js";
import { InProcessSqliteClient, WorkerSqliteClient, type SqliteClient } from "./sqlite-client.js";
import { ClientSqliteDialect } from "./sqlite-dialect.js";
import type { EvidenceDurability } from "./sqlite-session.js";
import type { Store } from "./types.js";

export const STORE_FILE = "gatehouse.db";
const DEFAULT_CHECKPOINT_EVERY_MS = 200;

export interface OpenStoreOptions {
  /** The data directory; the store is DATA/gatehouse.db. */
  dataDir: string;
  /** Open without writing anything (verify, tail). The store must exist. */
  readonly?: boolean;
  /**
   * Run SQLite in a worker thread (default) so commits' fsyncs do not block the event loop. `false` runs it
   * in-process: commits run on the calling thread without fsync; durability `fsync` then fsyncs the WAL on
   * libuv's thread pool before a write resolves, and WAL checkpoints run in a worker thread (docs/evidence.md).
   */
  worker?: boolean;
  /** In-process: how often the checkpoint thread checkpoints the WAL (default 200 ms). */
  checkpointEveryMs?: number;
  /** How long a write waits for another process's lock before failing (default 5000 ms). */
  busyTimeoutMs?: number;
  /** What a resolved write survives: `fsync` (default, power loss) or `os` (a gateway crash). */
  durability?: EvidenceDurability;
}

/** Opens (creating and migrating when writable) the embedded SQLite store. */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const dataDir = resolve(options.dataDir);
  const path = join(dataDir, STORE_FILE);
  const readonly = options.readonly ?? false;
  if (readonly) {
    if (!existsSync(path)) throw new Error(`no gatehouse store at ${path}`);
  } else {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  }
  const sqliteOptions = {
    path,
    readonly,
    busyTimeoutMs: options.busyTimeoutMs ?? 5000,
    ...(options.durability ? { durability: options.durability } : {}),
  };
  let client: SqliteClient;
  if (options.worker === false) {
    // in-process writes never fsync on the event loop: SQLite's own checkpoints (every 1000 WAL pages, inside a
    // commit) move to a thread's connection, and durability fsync syncs the WAL after each commit on libuv's
    // thread pool (WalSync)
    const writable = !readonly;
    const ip = new InProcessSqliteClient({
      ...sqliteOptions,
      ...(writable ? { autoCheckpoint: false, walSyncedByCaller: options.durability !== "os" } : {}),
    });
    if (writable) {
      try {
        await ip.startCheckpointer(sqliteOptions, options.checkpointEveryMs ?? DEFAULT_CHECKPOINT_EVERY_MS);
      } catch (err) {
        await ip.close();
        throw err;
      }
    }
    client = ip;
  } else {
    const wc = new WorkerSqliteClient(sqliteOptions);
    await wc.start();
    client = wc;
  }
  const dialect = new ClientSqliteDialect(client);
  const db = new Kysely<Database>({ dialect });
  try {
    if (!readonly) await migrateToLatest(db as Kysely<unknown>);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return new KyselyStore("sqlite", path, db, (qs) => dialect.batch(qs));
}
