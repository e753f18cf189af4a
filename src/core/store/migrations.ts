import { Migrator, sql, SqliteAdapter, type Kysely, type Migration, type MigrationProvider } from "kysely";

/**
 * Schema migrations, applied in name order by kysely's Migrator (it records them in kysely_migration).
 * Only the schema builder is used, so the same migrations run on SQLite and PostgreSQL. Never edit a shipped
 * migration; add the next one.
 */
const migrations: Record<string, Migration> = {
  "0001_evidence": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("audit_events")
        .addColumn("seq", "bigint", (c) => c.primaryKey())
        .addColumn("time", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("identity", "text")
        .addColumn("connection", "text")
        .addColumn("session_id", "text")
        .addColumn("decision", "text")
        .addColumn("rule", "text")
        .addColumn("data", "text")
        .addColumn("prev_hash", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("audit_events_session").on("audit_events").column("session_id").execute();
      await db.schema.createIndex("audit_events_time").on("audit_events").column("time").execute();

      await db.schema
        .createTable("audit_checkpoints")
        .addColumn("seq", "bigint", (c) => c.primaryKey())
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("time", "text", (c) => c.notNull())
        .addColumn("signature", "text", (c) => c.notNull())
        .addColumn("key_id", "text", (c) => c.notNull())
        .execute();

      await db.schema
        .createTable("signing_keys")
        .addColumn("key_id", "text", (c) => c.primaryKey())
        .addColumn("algorithm", "text", (c) => c.notNull())
        .addColumn("public_key", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();

      await db.schema
        .createTable("sessions")
        .addColumn("session_id", "text", (c) => c.primaryKey())
        .addColumn("connection", "text", (c) => c.notNull())
        .addColumn("protocol", "text", (c) => c.notNull())
        .addColumn("identity", "text")
        .addColumn("started_at", "text", (c) => c.notNull())
        .addColumn("ended_at", "text")
        .addColumn("end_reason", "text")
        .addColumn("event_count", "bigint")
        .addColumn("last_hash", "text")
        .addColumn("seal_signature", "text")
        .addColumn("seal_key_id", "text")
        .execute();
      await db.schema.createIndex("sessions_started_at").on("sessions").column("started_at").execute();

      await db.schema
        .createTable("recording_events")
        .addColumn("session_id", "text", (c) => c.notNull())
        .addColumn("seq", "bigint", (c) => c.notNull())
        .addColumn("t", "bigint", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("data", "text")
        .addColumn("prev_hash", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("recording_events_pk", ["session_id", "seq"])
        .execute();
    },
  },
  "0002_approvals": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("approvals")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("connection", "text", (c) => c.notNull())
        .addColumn("requester_subject", "text", (c) => c.notNull())
        .addColumn("exact_key", "text")
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("version", "bigint", (c) => c.notNull())
        .addColumn("body", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("approvals_status").on("approvals").columns(["status", "created_at"]).execute();
      await db.schema.createIndex("approvals_exact_key").on("approvals").column("exact_key").execute();
    },
  },
  "0003_lean_audit_events": {
    async up(db: Kysely<unknown>) {
      // Every audit commit waits for these on its fsync path (two more B-trees, more WAL pages per commit) and
      // no query uses them; a search feature should index off the commit path (docs/evidence.md).
      await db.schema.dropIndex("audit_events_session").ifExists().execute();
      await db.schema.dropIndex("audit_events_time").ifExists().execute();
    },
  },
  "0004_audit_seq_rowid": {
    async up(db: Kysely<unknown>) {
      // SQLite only. `bigint PRIMARY KEY` is a separate unique index next to the table's rowid B-tree: every audit
      // commit writes both (two WAL pages where one does), and the checkpoints copy both. `INTEGER PRIMARY KEY`
      // makes seq the rowid itself. SQLite cannot change a key in place, so the table is rebuilt, in one
      // transaction (a crash leaves the old table). It also refuses a non-integer seq from then on.
      if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return;
      // only a tampered log holds one, and the rebuild would fail on it with a bare "datatype mismatch"
      const odd = await sql<{
        seq: unknown;
      }>`SELECT seq FROM audit_events WHERE typeof(seq) <> 'integer' LIMIT 1`.execute(db);
      if (odd.rows.length > 0) {
        throw new Error(
          `audit_events holds seq ${String(odd.rows[0]?.seq)}, which is not an integer: the log was altered; ` +
            "run `gatehouse audit verify`, and restore the store from a backup",
        );
      }
      await db.transaction().execute(async (trx) => {
        await sql`CREATE TABLE audit_events_rowid (
          seq INTEGER PRIMARY KEY, time text NOT NULL, type text NOT NULL, identity text, connection text,
          session_id text, decision text, rule text, data text, prev_hash text NOT NULL, hash text NOT NULL)`.execute(
          trx,
        );
        await sql`INSERT INTO audit_events_rowid
          (seq, time, type, identity, connection, session_id, decision, rule, data, prev_hash, hash)
          SELECT seq, time, type, identity, connection, session_id, decision, rule, data, prev_hash, hash
          FROM audit_events ORDER BY seq`.execute(trx);
        await sql`DROP TABLE audit_events`.execute(trx);
        await sql`ALTER TABLE audit_events_rowid RENAME TO audit_events`.execute(trx);
      });
    },
  },
  "0005_evidence_log_index": {
    async up(db: Kysely<unknown>) {
      // The evidence log (segment files) is the source of truth; these tables index it. `pos` is the order in
      // which records were indexed: what readers page over across writers. (writer, seq) is each chain's key.
      await db.schema
        .createTable("log_audit_events")
        .addColumn("pos", "integer", (c) => c.primaryKey())
        .addColumn("writer", "text", (c) => c.notNull())
        .addColumn("seq", "bigint", (c) => c.notNull())
        .addColumn("time", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("connection", "text")
        .addColumn("session_id", "text")
        .addColumn("decision", "text")
        // the record as it was hashed (canonical JSON without `hash`): read back whole, never re-encoded
        .addColumn("text", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .addUniqueConstraint("log_audit_events_writer_seq", ["writer", "seq"])
        .execute();
      await db.schema
        .createTable("log_checkpoints")
        .addColumn("writer", "text", (c) => c.notNull())
        .addColumn("seq", "bigint", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("time", "text", (c) => c.notNull())
        .addColumn("signature", "text", (c) => c.notNull())
        .addColumn("key_id", "text", (c) => c.notNull())
        .addColumn("note", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("log_checkpoints_pk", ["writer", "seq"])
        .execute();
      // a recording event indexed from the log keeps the text it was hashed as (data stays NULL)
      await db.schema.alterTable("recording_events").addColumn("text", "text").execute();
      // which writer recorded a session: a restarting writer ends only its own interrupted sessions
      await db.schema.alterTable("sessions").addColumn("writer", "text").execute();
      // how far each writer's segments are indexed: the next byte to read
      await db.schema
        .createTable("log_watermarks")
        .addColumn("writer", "text", (c) => c.primaryKey())
        .addColumn("segment", "bigint", (c) => c.notNull())
        .addColumn("offset", "bigint", (c) => c.notNull())
        .execute();
    },
  },
};

const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };

export async function migrateToLatest(db: Kysely<unknown>): Promise<void> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName;
    throw new Error(
      `store migration ${failed ?? ""} failed: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

export const LATEST_MIGRATION = Object.keys(migrations).sort().at(-1) ?? "";
