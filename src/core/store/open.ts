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
import { EVIDENCE_DIR } from "../evidence/segments/format.js";
import { SegmentWriter, type SegmentWriterOptions } from "../evidence/segments/writer.js";
import { SegmentStore } from "./segment-store.js";

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

export interface OpenEvidenceStoreOptions {
  dataDir: string;
  /** What a resolved write survives: `fsync` (default, power loss) or `os` (a gateway crash). */
  durability?: EvidenceDurability;
  /** This process's writer name (default: the first free of w1, w2, ...). */
  writer?: string;
  /** Start a new segment past this many bytes (default 64 MiB). */
  maxSegmentBytes?: number;
  /** Background indexing interval (default 100 ms). */
  indexEveryMs?: number;
  /** Tests: a failing disk under the segment writer. */
  hooks?: SegmentWriterOptions["hooks"];
}

/**
 * Opens the gateway's store: this process's segment log (the evidence's source of truth; a torn tail is cut and
 * reported in `recovery`) and the SQLite index beside it, which a worker thread fills from the segments.
 */
export async function openEvidenceStore(options: OpenEvidenceStoreOptions): Promise<SegmentStore> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { index, client, db } = await openIndex(dataDir);
  let log: SegmentWriter;
  try {
    log = SegmentWriter.open({
      dataDir,
      durability: options.durability ?? "fsync",
      ...(options.writer !== undefined ? { writer: options.writer } : {}),
      ...(options.maxSegmentBytes !== undefined ? { maxSegmentBytes: options.maxSegmentBytes } : {}),
      ...(options.hooks ? { hooks: options.hooks } : {}),
    });
  } catch (err) {
    await index.close();
    throw err;
  }
  await forgetIndexAheadOfLog(db, log);
  const store = new SegmentStore({
    dataDir,
    log,
    index,
    client,
    ...(options.indexEveryMs !== undefined ? { indexEveryMs: options.indexEveryMs } : {}),
  });
  try {
    await store.catchUp();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}

/**
 * Opens a data directory's store for reading evidence with the index brought up to date first: every writer's
 * segments are indexed up to their last complete line (a gateway stopped by a crash left its tail unindexed).
 * Only the index is written, never the log. A data directory without an evidence log (written by an earlier
 * version) is opened read-only, as `openStore({ readonly: true })` does.
 */
export async function openEvidenceReader(dataDir: string): Promise<Store> {
  const dir = resolve(dataDir);
  if (!existsSync(join(dir, EVIDENCE_DIR))) return openStore({ dataDir: dir, readonly: true });
  const { index, client } = await openIndex(dir);
  try {
    await client.indexLog({ dataDir: dir, limits: {} });
  } catch (err) {
    await index.close();
    throw err;
  }
  return index;
}

/**
 * The index can be ahead of the writer's log at start: a torn tail was cut after a reader had indexed past it
 * (the indexer moves past unreadable lines, and would read the next appends from the middle of a line), or, with
 * `audit.durability: os`, a power loss took the log's last writes while the index, written without fsync too,
 * kept them. Its watermark then points past the end of the writer's segments. The index is only a copy, so this
 * writer's part of it is dropped and rebuilt from the log (by the first catch-up) instead of holding records the
 * log lacks.
 */
async function forgetIndexAheadOfLog(db: Kysely<Database>, log: SegmentWriter): Promise<void> {
  const mark = await db.selectFrom("log_watermarks").selectAll().where("writer", "=", log.writer).executeTakeFirst();
  if (mark === undefined) return;
  const end = log.durable;
  const segment = Number(mark.segment);
  const ahead = segment > end.segment || (segment === end.segment && Number(mark.offset) > end.offset);
  if (!ahead) return;
  await db.transaction().execute(async (trx) => {
    const own = trx.selectFrom("sessions").select("session_id").where("writer", "=", log.writer);
    await trx.deleteFrom("recording_events").where("session_id", "in", own).execute();
    await trx.deleteFrom("sessions").where("writer", "=", log.writer).execute();
    await trx.deleteFrom("log_audit_events").where("writer", "=", log.writer).execute();
    await trx.deleteFrom("log_checkpoints").where("writer", "=", log.writer).execute();
    await trx.deleteFrom("log_watermarks").where("writer", "=", log.writer).execute();
  });
}

/**
 * The evidence log's SQLite index (and the approvals), migrated, in a worker thread that can also index segments.
 * It is rebuilt from the segments if lost, so it never waits for an fsync of its own.
 */
async function openIndex(
  dataDir: string,
): Promise<{ index: KyselyStore; client: WorkerSqliteClient; db: Kysely<Database> }> {
  const path = join(dataDir, STORE_FILE);
  const client = new WorkerSqliteClient({ path, readonly: false, busyTimeoutMs: 5000, durability: "os" });
  await client.start();
  const dialect = new ClientSqliteDialect(client);
  const db = new Kysely<Database>({ dialect });
  try {
    await migrateToLatest(db as Kysely<unknown>);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return { index: new KyselyStore("sqlite", path, db, (qs) => dialect.batch(qs)), client, db };
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
