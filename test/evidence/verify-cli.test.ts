/**
 * Tampers with a real evidence store directly in its SQLite file and checks that the compiled CLI
 * (`node bin/gatehouse.js audit verify`, run as a separate process) exits 1 naming the right event.
 */
import Database from "better-sqlite3";
import { spawnSync } from "node:child_process";
import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/core/evidence/audit-event.js";
import { AuditLog } from "../../src/core/evidence/audit-log.js";
import { auditRecordHash } from "../../src/core/evidence/chain.js";
import { SessionRecorder } from "../../src/core/evidence/recorder.js";
import { openStore } from "../../src/core/store/index.js";
import { compiledCli } from "../support/compiled-cli.js";
import { cleanupDirs, event, newKey, tempDir } from "./helpers.js";

const key = newKey();
let launcher: string;
let pristine: string;
let pinnedKeyFile: string;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [launcher, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

/** A copy of the pristine data dir with `tamper` applied to its SQLite file. */
function tampered(tamper: (db: Database.Database) => void): string {
  const dir = tempDir();
  cpSync(pristine, dir, { recursive: true });
  const db = new Database(join(dir, "gatehouse.db"));
  try {
    db.transaction(() => tamper(db))();
  } finally {
    db.close();
  }
  return dir;
}

function readRecords(db: Database.Database): AuditRecord[] {
  const rows = db.prepare("SELECT * FROM audit_events ORDER BY seq").all() as Record<string, string | number | null>[];
  return rows.map((r) => {
    const rec: Record<string, unknown> = { seq: r["seq"], time: r["time"], type: r["type"] };
    for (const f of ["connection", "session_id", "decision", "rule"]) if (r[f] !== null) rec[f] = r[f];
    for (const f of ["identity", "data"]) if (r[f] !== null) rec[f] = JSON.parse(String(r[f]));
    return { ...rec, prev_hash: r["prev_hash"], hash: r["hash"] } as AuditRecord;
  });
}

beforeAll(async () => {
  launcher = await compiledCli();
  pristine = tempDir();
  const store = await openStore({ dataDir: pristine });
  const log = await AuditLog.open(store, { signingKey: key, checkpointEvery: 10, checkpointIntervalMs: 0 });
  for (let i = 1; i <= 25; i++) await log.append(event(i));
  await log.close(); // checkpoints at 10, 20 and 25
  const recorder = new SessionRecorder(store, { signingKey: key });
  for (const id of ["s-1", "s-2"]) {
    const rec = await recorder.start({ sessionId: id, connection: "app-host", protocol: "ssh" });
    for (let i = 0; i < 5; i++) rec.record(i % 2 ? "output" : "input", `line ${i}\n`);
    await rec.seal("client closed");
  }
  await store.close();
  pinnedKeyFile = join(tempDir(), "audit.pub");
  writeFileSync(pinnedKeyFile, key.publicKey.export({ type: "spki", format: "pem" }));
}, 180_000);

afterAll(() => cleanupDirs());

describe("gatehouse audit verify (compiled CLI, separate process)", () => {
  it("passes an untouched store and prints a summary", () => {
    const r = cli("audit", "verify", "--data", pristine);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/25 records verified \(seq 1\.\.25\)/);
    expect(r.stdout).toMatch(/checkpoints: 3 signatures verified, last at seq 25, 0 record\(s\) after it/);
    expect(r.stdout).toMatch(/sessions: 2 verified \(2 sealed, 0 unsealed\)/);
    const json = cli("audit", "verify", "--data", pristine, "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, records: 25, last_seq: 25, checkpoints: 3 });
  });

  it("accepts the right pinned public key and rejects another", () => {
    expect(cli("audit", "verify", "--data", pristine, "--public-key", pinnedKeyFile).code).toBe(0);
    const other = join(tempDir(), "other.pub");
    writeFileSync(other, newKey().publicKey.export({ type: "spki", format: "pem" }));
    const r = cli("audit", "verify", "--data", pristine, "--public-key", other);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/checkpoint at seq 10: not signed by the pinned key/);
  });

  it("detects a changed event", () => {
    const dir = tampered((db) => {
      db.prepare(`UPDATE audit_events SET data = '{"statement":"select 1"}' WHERE seq = 12`).run();
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("gatehouse: audit event seq 12: hash mismatch (record was changed)");
  });

  it("detects a changed identity column", () => {
    const dir = tampered((db) => db.prepare(`UPDATE audit_events SET decision = 'deny' WHERE seq = 3`).run());
    expect(cli("audit", "verify", "--data", dir).stderr).toMatch(/audit event seq 3: hash mismatch/);
  });

  it("detects a dropped event", () => {
    const dir = tampered((db) => db.prepare("DELETE FROM audit_events WHERE seq = 12").run());
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^gatehouse: audit event seq 12: dropped \(the log jumps from seq 11 to 13\)/);
  });

  it("detects a dropped event when later events were renumbered", () => {
    const dir = tampered((db) => {
      db.prepare("DELETE FROM audit_events WHERE seq = 12").run();
      for (let s = 13; s <= 25; s++) db.prepare("UPDATE audit_events SET seq = ? WHERE seq = ?").run(s - 1, s);
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit event seq 12: dropped/);
  });

  it("detects the last events dropped (a checkpoint covers them)", () => {
    const dir = tampered((db) => db.prepare("DELETE FROM audit_events WHERE seq > 22").run());
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit event seq 23: dropped \(a signed checkpoint covers up to seq 25\)/);
  });

  it("detects an inserted event (well-formed, chained to its predecessor, later events renumbered)", () => {
    const dir = tampered((db) => {
      const records = readRecords(db);
      for (let s = 25; s >= 12; s--) db.prepare("UPDATE audit_events SET seq = ? WHERE seq = ?").run(s + 1, s);
      const prev = records[10]!; // seq 11
      const forged = {
        seq: 12,
        time: prev.time,
        type: "request",
        data: { statement: "grant all" },
        prev_hash: prev.hash,
      };
      db.prepare("INSERT INTO audit_events (seq, time, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)").run(
        12,
        forged.time,
        forged.type,
        JSON.stringify(forged.data),
        forged.prev_hash,
        auditRecordHash(forged),
      );
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit event seq 12: inserted \(seq 13 links past it\)/);
  });

  it("detects an event inserted between two seqs", () => {
    const dir = tampered((db) => {
      // seq is the rowid (INTEGER PRIMARY KEY), which refuses 12.5: someone who can write the file rebuilds the
      // table without that key first
      db.exec(`CREATE TABLE loose AS SELECT * FROM audit_events; DROP TABLE audit_events;
        ALTER TABLE loose RENAME TO audit_events;`);
      db.prepare(
        "INSERT INTO audit_events (seq, time, type, prev_hash, hash) SELECT 12.5, time, type, hash, hash FROM audit_events WHERE seq = 12",
      ).run();
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit event seq 13: inserted \(an event stored as seq 12.5 follows seq 12\)/);
  });

  it("detects reordered events (rows renumbered into a new order)", () => {
    const dir = tampered((db) => {
      db.prepare(`UPDATE audit_events SET seq = -1 WHERE seq = 12`).run();
      db.prepare(`UPDATE audit_events SET seq = 12 WHERE seq = 13`).run();
      db.prepare(`UPDATE audit_events SET seq = 13 WHERE seq = -1`).run();
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit event seq 12: out of order \(it links to the event now at seq 13\)/);
  });

  it("detects reordered events (contents swapped, seq kept)", () => {
    const dir = tampered((db) => {
      const cols = [
        "time",
        "type",
        "identity",
        "connection",
        "session_id",
        "decision",
        "rule",
        "data",
        "prev_hash",
        "hash",
      ];
      const get = db.prepare(`SELECT ${cols.join(", ")} FROM audit_events WHERE seq = ?`);
      const set = db.prepare(`UPDATE audit_events SET ${cols.map((c) => `${c} = @${c}`).join(", ")} WHERE seq = @seq`);
      const a = get.get(7) as Record<string, unknown>;
      const b = get.get(8) as Record<string, unknown>;
      set.run({ ...b, seq: 7 });
      set.run({ ...a, seq: 8 });
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit event seq 7: out of order/);
  });

  it("catches a changed-then-rehashed chain with the signed checkpoint", () => {
    const dir = tampered((db) => {
      const records = readRecords(db);
      let prevHash = records[10]!.hash; // seq 11
      for (const rec of records.slice(11)) {
        const next: AuditRecord = { ...rec, prev_hash: prevHash };
        if (rec.seq === 12) next.data = { statement: "select harmless" };
        next.hash = auditRecordHash(next);
        db.prepare("UPDATE audit_events SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?").run(
          JSON.stringify(next.data),
          next.prev_hash,
          next.hash,
          rec.seq,
        );
        prevHash = next.hash;
      }
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /audit events seq 11\.\.20: chain does not match the signed checkpoint at seq 20 \(an event was changed/,
    );
    // the attacker also rewrites the checkpoint hashes: now the signatures fail
    const dir2 = tampered((db) => {
      for (const s of [20, 25]) {
        // a different first digit (a hash that starts with f already would be left as it was, 1 run in 16)
        db.prepare(
          "UPDATE audit_checkpoints SET hash = (CASE WHEN hash LIKE 'f%' THEN 'e' ELSE 'f' END) || substr(hash, 2) WHERE seq = ?",
        ).run(s);
      }
    });
    expect(cli("audit", "verify", "--data", dir2).stderr).toMatch(/checkpoint at seq 20: signature does not verify/);
  });

  it("detects a forged checkpoint signature", () => {
    const dir = tampered((db) => {
      const forged = Buffer.alloc(64, 7).toString("base64");
      db.prepare("UPDATE audit_checkpoints SET signature = ? WHERE seq = 10").run(forged);
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("gatehouse: checkpoint at seq 10: signature does not verify (forged or altered)");
  });

  it("detects a checkpoint signed by a key that is not the stored one", () => {
    const dir = tampered((db) =>
      db.prepare("UPDATE audit_checkpoints SET key_id = 'deadbeefdeadbeef' WHERE seq = 20").run(),
    );
    expect(cli("audit", "verify", "--data", dir).stderr).toMatch(/checkpoint at seq 20: signed by unknown key/);
  });

  it("detects a broken recording seal and a changed recording event, naming every bad session", () => {
    const dir = tampered((db) => {
      db.prepare("UPDATE sessions SET end_reason = 'timeout' WHERE session_id = 's-1'").run();
      db.prepare(`UPDATE recording_events SET data = '"rm -rf /\\n"' WHERE session_id = 's-2' AND seq = 3`).run();
    });
    const r = cli("audit", "verify", "--data", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/session s-1: seal signature does not verify \(and 1 more problem/);
    const json = cli("audit", "verify", "--data", dir, "--json");
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { bad_sessions: { message: string }[]; audit_error?: unknown };
    expect(report.audit_error).toBeUndefined();
    expect(report.bad_sessions.map((b) => b.message)).toEqual([
      "session s-1: seal signature does not verify",
      "session s-2: event 3: hash mismatch (event was changed)",
    ]);
  });

  it("prints the latest records with audit tail", () => {
    const r = cli("audit", "tail", "--data", pristine, "-n", "3", "--json");
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as AuditRecord);
    expect(lines.map((l) => l.seq)).toEqual([23, 24, 25]);
    const text = cli("audit", "tail", "--data", pristine, "-n", "2");
    expect(text.stdout).toMatch(/^24\t\S+\trequest ci-bot @app-db allow/m);
  });

  it("fails with one line when there is no store", () => {
    const r = cli("audit", "verify", "--data", tempDir());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^gatehouse: cannot open the store in .*: no gatehouse store at/);
  });
});
