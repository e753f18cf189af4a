export { openStore, STORE_FILE, type OpenStoreOptions } from "./open.js";
export {
  CorruptRecordError,
  type AuditCommit,
  type PageOptions,
  type RecordingWrite,
  type SessionListOptions,
  type Store,
} from "./types.js";
export { KyselyStore, type BatchRunner, type Statement } from "./kysely-store.js";
export { migrateToLatest } from "./migrations.js";
