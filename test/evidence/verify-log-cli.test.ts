/**
 * The evidence log (segment files) as `gatehouse audit verify` sees it: a pristine log written line by line with
 * the real SegmentWriter and the real encoders (exactly what the AuditLog and the recorder write), then tampered
 * with in its files or in its SQLite index, and checked by the compiled CLI run as a separate process.
 */
import Database from "better-sqlite3";
import { spawnSync } from "node:child_process";
import { cpSync, readdirSync, readFileSync, rmSync, appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/core/evidence/audit-log.js";
import type { AuditRecord } from "../../src/core/evidence/audit-event.js";
import { canonicalize, canonicalJson, sha256Hex, ZERO_HASH } from "../../src/core/evidence/canonical.js";
import { encodedAuditRecordText, encodedRecordingEventText, sealPayload } from "../../src/core/evidence/chain.js";
import { SessionRecorder } from "../../src/core/evidence/recorder.js";
import { createSinks, SinkForwarder } from "../../src/core/evidence/sinks/index.js";
import { checkpointLine, hashedLine, jsonLine } from "../../src/core/evidence/segments/format.js";
import { signCheckpoint } from "../../src/core/evidence/segments/note.js";
import { SegmentWriter } from "../../src/core/evidence/segments/writer.js";
import { signCanonical, signingKeyRecord, toSigner, type EvidenceSigner } from "../../src/core/evidence/signing.js";
import type { VerifyReport } from "../../src/core/evidence/verify.js";
import { indexEvidenceLog } from "../../src/core/store/log-indexer.js";
import { openEvidenceStore, openStore } from "../../src/core/store/open.js";
import { compiledCli } from "../support/compiled-cli.js";
import { cleanupDirs, event, newKey, tempDir } from "./helpers.js";

const signer = toSigner(newKey());
const T0 = Date.parse("2026-03-01T10:00:00.000Z");
let launcher: string;
let pristine: string;
let pinnedKeyFile: string;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [launcher, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

const verify = (dir: string, ...more: string[]) => cli("audit", "verify", "--data", dir, ...more);

function report(dir: string, ...more: string[]): VerifyReport {
  return JSON.parse(verify(dir, "--json", ...more).stdout) as VerifyReport;
}

// ---- writing a log the way the gateway does (AuditLog + recorder over a SegmentWriter)

interface ChainHead {
  seq: number;
  hash: string;
}

/** The `a` line of record `seq`, chained to `prev`: encoded once, hashed, written as hashed. */
function auditLine(writer: string, seq: number, prevHash: string, data?: Record<string, unknown>) {
  const { identity, data: d, ...body } = event(seq);
  const record = { writer, seq, time: new Date(T0 + seq * 1000).toISOString(), ...body, prev_hash: prevHash };
  const text = encodedAuditRecordText(record, canonicalize(identity), canonicalize(data ?? d));
  const hash = sha256Hex(text);
  return { hash, line: hashedLine("a", hash, text) };
}

function checkpointAt(s: EvidenceSigner, writer: string, head: ChainHead): string {
  const time = new Date(T0 + head.seq * 1000 + 500).toISOString();
  return checkpointLine(signCheckpoint(s, { writer, seq: head.seq, hash: head.hash, time }).note);
}

class SessionLines {
  seq = 0;
  prev: string;
  constructor(
    readonly id: string,
    readonly started: string,
  ) {
    this.prev = sha256Hex(this.headerText);
  }
  get headerText(): string {
    return canonicalJson({ session_id: this.id, connection: "app-host", protocol: "ssh", started_at: this.started });
  }
  header(): string {
    return jsonLine("s", this.headerText);
  }
  event(text: string): string {
    const ev = { session_id: this.id, seq: ++this.seq, t: this.seq * 10, kind: "output", prev_hash: this.prev };
    const encoded = encodedRecordingEventText(ev, canonicalize(text));
    this.prev = sha256Hex(encoded);
    return hashedLine("r", this.prev, encoded);
  }
  seal(): string {
    const payload = sealPayload({
      session_id: this.id,
      count: this.seq,
      last_hash: this.prev,
      ended_at: new Date(T0 + 60_000).toISOString(),
      reason: "client closed",
    });
    return jsonLine(
      "z",
      canonicalJson({ ...payload, signature: signCanonical(signer, payload), key_id: signer.keyId }),
    );
  }
}

/**
 * Writer w1: 25 audit records with checkpoints at 10, 20 and 25 (checkpointEvery 10, then close()), two
 * sealed sessions whose events sit between the records and span segments (small segments: several files).
 * Writer w2: 5 records and a checkpoint, signed with the same key, whose `k` line only w1's log holds.
 */
async function writePristine(dir: string): Promise<void> {
  const w1 = SegmentWriter.open({ dataDir: dir, writer: "w1", durability: "os", maxSegmentBytes: 4096 });
  const s1 = new SessionLines("s-1", new Date(T0 + 3500).toISOString());
  const s2 = new SessionLines("s-2", new Date(T0 + 12500).toISOString());
  let head: ChainHead = { seq: 0, hash: ZERO_HASH };
  for (let seq = 1; seq <= 25; seq++) {
    const a = auditLine("w1", seq, head.hash);
    head = { seq, hash: a.hash };
    let lines = seq === 1 ? jsonLine("k", canonicalJson(signingKeyRecord(signer, new Date(T0).toISOString()))) : "";
    lines += a.line;
    if (seq % 10 === 0) lines += checkpointAt(signer, "w1", head);
    if (seq === 3) lines += s1.header();
    if (seq >= 4 && seq <= 9) lines += s1.event(`line ${seq}\n`);
    if (seq === 9) lines += s1.seal();
    if (seq === 12) lines += s2.header();
    if (seq >= 13 && seq <= 18) lines += s2.event(`$ ls ${seq}\n`) + s2.event(`file-${seq}\n`);
    if (seq === 18) lines += s2.seal();
    await w1.append(lines);
  }
  await w1.append(checkpointAt(signer, "w1", head)); // close(): the rest is signed
  await w1.close();
  const w2 = SegmentWriter.open({ dataDir: dir, writer: "w2", durability: "os" });
  let h2: ChainHead = { seq: 0, hash: ZERO_HASH };
  for (let seq = 1; seq <= 5; seq++) {
    const a = auditLine("w2", seq, h2.hash);
    h2 = { seq, hash: a.hash };
    await w2.append(a.line + (seq === 5 ? checkpointAt(signer, "w2", h2) : ""));
  }
  await w2.close();
}

// ---- tampering with the files

interface LogLine {
  file: string;
  text: string;
}

function segFiles(dir: string, writer: string): string[] {
  const wdir = join(dir, "evidence", writer);
  return readdirSync(wdir)
    .filter((f) => f.endsWith(".seg"))
    .sort()
    .map((f) => join(wdir, f));
}

function readLog(dir: string, writer: string): LogLine[] {
  return segFiles(dir, writer).flatMap((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .slice(0, -1)
      .map((text) => ({ file, text })),
  );
}

function writeLog(dir: string, writer: string, lines: LogLine[]): void {
  for (const file of segFiles(dir, writer)) {
    const mine = lines.filter((l) => l.file === file).map((l) => `${l.text}\n`);
    writeFileSync(file, mine.join(""));
  }
}

/** A copy of the pristine data dir with w1's lines rewritten by `edit`. */
function tampered(edit: (lines: LogLine[]) => LogLine[] | void, writer = "w1"): string {
  const dir = tempDir();
  cpSync(pristine, dir, { recursive: true });
  const lines = readLog(dir, writer);
  writeLog(dir, writer, edit(lines) ?? lines);
  return dir;
}

const valueOf = (l: LogLine) => JSON.parse(l.text.slice(67)) as Record<string, unknown>;

/** Index of the `a` line of record `seq`. */
function at(lines: LogLine[], seq: number): number {
  const i = lines.findIndex((l) => l.text.startsWith("a ") && valueOf(l)["seq"] === seq);
  if (i < 0) throw new Error(`no record ${seq}`);
  return i;
}

/** An `a` line with its record changed by `change`, hashed again (a forger's rewrite). */
function rehashed(l: LogLine, change: (v: Record<string, unknown>) => void): LogLine {
  const v = valueOf(l);
  change(v);
  const text = canonicalJson(v);
  return { file: l.file, text: `a ${sha256Hex(text)} ${text}` };
}

const hashOf = (l: LogLine) => l.text.slice(2, 66);

beforeAll(async () => {
  launcher = await compiledCli();
  pristine = tempDir();
  await writePristine(pristine);
  pinnedKeyFile = join(tempDir(), "audit.pub");
  writeFileSync(pinnedKeyFile, signer.publicKey.export({ type: "spki", format: "pem" }));
}, 180_000);

afterAll(() => cleanupDirs());

describe("gatehouse audit verify over the evidence log (compiled CLI)", () => {
  it("passes a pristine log and reports each writer", () => {
    expect(segFiles(pristine, "w1").length).toBeGreaterThan(3); // sessions and checkpoints span segments
    const r = verify(pristine);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^audit log: 30 records in 2 writer chain\(s\), 4 checkpoint signature\(s\) verified/);
    expect(r.stdout).toMatch(
      /^writer w1: 25 records verified \(seq 1\.\.25\), last hash [0-9a-f]{64}; 3 checkpoint\(s\) verified, last at seq 25, 0 record\(s\) after it not yet signed$/m,
    );
    expect(r.stdout).toMatch(/^writer w2: 5 records verified \(seq 1\.\.5\), .*last at seq 5/m);
    expect(r.stdout).toMatch(/^sessions: 2 verified \(2 sealed, 0 unsealed\)$/m);
    expect(r.stdout).toMatch(/^index: none \(no gatehouse\.db\)/m);
    expect(r.stdout).not.toMatch(/warning/);
    const json = report(pristine);
    expect(json).toMatchObject({ ok: true, records: 30, checkpoints: 4, unsigned_tail: 0, problems: [] });
    expect(json.last_seq).toBeUndefined(); // two chains: no single last seq
    expect(json.writers).toMatchObject([
      { writer: "w1", records: 25, first_seq: 1, last_seq: 25, checkpoints: 3, last_checkpoint_seq: 25 },
      { writer: "w2", records: 5, last_seq: 5, checkpoints: 1, unsigned_tail: 0, torn_tail_bytes: 0 },
    ]);
    expect(json.writers[0]!.last_hash).toBe(hashOf(readLog(pristine, "w1")[at(readLog(pristine, "w1"), 25)]!));
    expect(json.key_ids).toEqual([signer.keyId]);
  });

  it("accepts the right pinned public key and rejects another", () => {
    const ok = verify(pristine, "--public-key", pinnedKeyFile);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`pinned key: ${signer.keyId}`));
    const other = join(tempDir(), "other.pub");
    writeFileSync(other, newKey().publicKey.export({ type: "spki", format: "pem" }));
    const r = verify(pristine, "--public-key", other);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^gatehouse: writer w1: checkpoint at seq 10: not signed by the pinned key \(and \d+ more/,
    );
  });

  it("passes a log whose last line is torn (a warning, not a failure)", () => {
    const dir = tampered(() => undefined);
    const last = segFiles(dir, "w1").at(-1)!;
    const partial = `a ${"ab".repeat(32)} {"connection":"app-db","data":{"n":26`;
    appendFileSync(last, partial);
    const r = verify(dir);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^writer w1: 25 records verified .*; torn tail of \d+ byte\(s\)$/m);
    expect(r.stdout).toMatch(
      new RegExp(`warning: writer w1: torn tail: ${Buffer.byteLength(partial)} byte\\(s\\) at the end of 0+\\d+\\.seg`),
    );
    // trailing garbage that a crash can leave (zeros, then a later newline) is a torn tail too
    appendFileSync(last, "\0\0\0\0\n\0\0");
    const json = report(dir);
    expect(json.ok).toBe(true);
    expect(json.writers[0]!.torn_tail_bytes).toBe(Buffer.byteLength(partial) + 7);
  });

  it("detects an edited record (text changed, hash kept)", () => {
    const dir = tampered((lines) => {
      const i = at(lines, 12);
      lines[i]!.text = lines[i]!.text.replace('"statement":"select 12"', '"statement":"select 99"');
    });
    const r = verify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("gatehouse: writer w1: audit event seq 12: hash mismatch (record was changed)");
    expect(report(dir).audit_error).toMatchObject({ writer: "w1", seq: 12, reason: "changed" });
  });

  it("catches an edited record whose hash and the chain after it were recomputed, with the signed checkpoint", () => {
    const dir = tampered((lines) => {
      let prev = hashOf(lines[at(lines, 11)]!);
      for (let seq = 12; seq <= 25; seq++) {
        const i = at(lines, seq);
        lines[i] = rehashed(lines[i]!, (v) => {
          if (seq === 12) (v["data"] as Record<string, unknown>)["statement"] = "select harmless";
          v["prev_hash"] = prev;
        });
        prev = hashOf(lines[i]!);
      }
    });
    const r = verify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "gatehouse: writer w1: audit events seq 11..20: chain does not match the signed checkpoint at seq 20 " +
        "(an event was changed and the chain recomputed)",
    );
  });

  it("detects a record whose hash alone was recomputed (the next one still links to the original)", () => {
    const dir = tampered((lines) => {
      const i = at(lines, 12);
      lines[i] = rehashed(lines[i]!, (v) => (v["decision"] = "deny"));
    });
    expect(verify(dir).stderr).toBe(
      "gatehouse: writer w1: audit event seq 12: changed (its hash was recomputed; seq 13 still links to the original)",
    );
  });

  it("detects a dropped record", () => {
    const dir = tampered((lines) => lines.filter((_, i) => i !== at(lines, 12)));
    const r = verify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("gatehouse: writer w1: audit event seq 12: dropped (the log jumps from seq 11 to 13)");
  });

  it("detects records dropped from the end (a checkpoint beyond the last record)", () => {
    const dir = tampered((lines) => lines.filter((l) => !(l.text.startsWith("a ") && Number(valueOf(l)["seq"]) > 22)));
    const r = verify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "gatehouse: writer w1: audit event seq 23: dropped (a signed checkpoint covers up to seq 25)",
    );
  });

  it("detects an inserted record (well-formed, chained to its predecessor)", () => {
    const forge = (lines: LogLine[]) => {
      const prev = lines[at(lines, 11)]!;
      return rehashed(prev, (v) => {
        v["seq"] = 12;
        v["prev_hash"] = hashOf(prev);
        v["data"] = { statement: "grant all" };
      });
    };
    // the records after it keep their seq
    const dir = tampered((lines) => {
      lines.splice(at(lines, 11) + 1, 0, forge(lines));
    });
    expect(verify(dir).stderr).toBe(
      "gatehouse: writer w1: audit event seq 12: inserted (the record after it repeats seq 12)",
    );
    // the records after it renumbered (seq edited, hash kept)
    const dir2 = tampered((lines) => {
      const forged = forge(lines);
      for (let seq = 25; seq >= 12; seq--) {
        const l = lines[at(lines, seq)]!;
        l.text = l.text.replace(`"seq":${seq},`, `"seq":${seq + 1},`);
      }
      lines.splice(at(lines, 11) + 1, 0, forged);
    });
    expect(verify(dir2).stderr).toBe("gatehouse: writer w1: audit event seq 12: inserted (seq 13 links past it)");
  });

  it("detects two records swapped (reordered)", () => {
    const dir = tampered((lines) => {
      const i = at(lines, 12);
      const j = at(lines, 13);
      const a = lines[i]!.text;
      lines[i]!.text = lines[j]!.text;
      lines[j]!.text = a;
    });
    const r = verify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("gatehouse: writer w1: audit event seq 12: out of order (it comes after seq 13)");
    expect(report(dir).audit_error).toMatchObject({ reason: "reordered", seq: 12 });
    // the contents swapped with the seq numbers kept in place: the link points to a later record
    const dir2 = tampered((lines) => {
      const i = at(lines, 7);
      const j = at(lines, 8);
      const a = lines[i]!.text.replace('"seq":7,', '"seq":8,');
      lines[i]!.text = lines[j]!.text.replace('"seq":8,', '"seq":7,');
      lines[j]!.text = a;
    });
    expect(verify(dir2).stderr).toBe(
      "gatehouse: writer w1: audit event seq 7: out of order (it links to the event now at seq 8)",
    );
  });

  it("detects a forged checkpoint: altered note, garbage signature, another key", () => {
    const cpLine = (lines: LogLine[], seq: number) =>
      lines.findIndex((l) => l.text.startsWith("c ") && (JSON.parse(l.text.slice(2)) as string).includes(`\n${seq}\n`));
    const altered = tampered((lines) => {
      const i = cpLine(lines, 10);
      const note = (JSON.parse(lines[i]!.text.slice(2)) as string).replace(/time \S+/, "time 2020-01-01T00:00:00.000Z");
      lines[i]!.text = `c ${JSON.stringify(note)}`;
    });
    expect(verify(altered).stderr).toBe(
      "gatehouse: writer w1: checkpoint at seq 10: signature does not verify (forged or altered)",
    );
    const garbage = tampered((lines) => {
      const i = cpLine(lines, 20);
      const note = (JSON.parse(lines[i]!.text.slice(2)) as string).replace(/ (\S+)\n$/, (_m, blob: string) => {
        const bytes = Buffer.from(blob, "base64");
        bytes.fill(7, 4); // the key hash kept, the signature replaced
        return ` ${bytes.toString("base64")}\n`;
      });
      lines[i]!.text = `c ${JSON.stringify(note)}`;
    });
    expect(verify(garbage).stderr).toBe(
      "gatehouse: writer w1: checkpoint at seq 20: signature does not verify (forged or altered)",
    );
    // a forger with a key of their own signs a checkpoint over a rewritten chain and adds the key's `k` line: a
    // trusted-keys-from-the-log verify cannot tell, so an auditor pins the gateway's public key
    const forger = toSigner(newKey());
    const rewritten = tampered((lines) => {
      let prev = hashOf(lines[at(lines, 11)]!);
      for (let seq = 12; seq <= 25; seq++) {
        const i = at(lines, seq);
        lines[i] = rehashed(lines[i]!, (v) => {
          if (seq === 12) (v["data"] as Record<string, unknown>)["statement"] = "select harmless";
          v["prev_hash"] = prev;
        });
        prev = hashOf(lines[i]!);
      }
      for (const seq of [20, 25]) {
        const i = cpLine(lines, seq);
        lines[i]!.text = checkpointAt(forger, "w1", { seq, hash: hashOf(lines[at(lines, seq)]!) }).slice(0, -1);
      }
      const k = jsonLine("k", canonicalJson(signingKeyRecord(forger, new Date(T0).toISOString()))).slice(0, -1);
      lines.splice(1, 0, { file: lines[0]!.file, text: k });
    });
    expect(verify(rewritten).code).toBe(0);
    expect(verify(rewritten, "--public-key", pinnedKeyFile).stderr).toMatch(
      /^gatehouse: writer w1: checkpoint at seq 20: not signed by the pinned key/,
    );
    // and a checkpoint signed by a key that no `k` line holds
    const unknown = tampered((lines) => {
      const i = cpLine(lines, 20);
      lines[i]!.text = checkpointAt(forger, "w1", { seq: 20, hash: hashOf(lines[at(lines, 20)]!) }).slice(0, -1);
    });
    expect(verify(unknown).stderr).toBe(
      `gatehouse: writer w1: checkpoint at seq 20: signed by unknown key ${forger.keyId}`,
    );
  });

  it("trusts a key that only another writer's log holds", () => {
    const dir = tampered((lines) => lines.filter((l) => !l.text.startsWith("k ")));
    // (w2's checkpoint and both seals name it too)
    expect(verify(dir).stderr).toBe(
      `gatehouse: writer w1: checkpoint at seq 10: signed by unknown key ${signer.keyId} (and 3 more problem(s); see --json)`,
    );
    const w2 = readLog(dir, "w2");
    const k = readLog(pristine, "w1").find((l) => l.text.startsWith("k "))!;
    w2.splice(1, 0, { file: w2[0]!.file, text: k.text });
    writeLog(dir, "w2", w2);
    const r = verify(dir);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("detects a damaged line in the middle", () => {
    const dir = tampered((lines) => {
      const i = at(lines, 12);
      lines[i]!.text = lines[i]!.text.slice(0, 120);
    });
    const r = verify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^gatehouse: writer w1: 0+\d+\.seg line \d+ \(byte \d+\): damaged line, not valid JSON \(after audit event seq 11\)/,
    );
    expect(report(dir).audit_error).toMatchObject({ reason: "damaged", seq: 12 });
    // unreadable bytes at the end of a segment that has a later one: not a torn write either
    const dir2 = tampered(() => undefined);
    appendFileSync(segFiles(dir2, "w1")[0]!, "a 0123");
    expect(verify(dir2).stderr).toMatch(
      /^gatehouse: writer w1: 00000001\.seg line \d+ .*damaged line, an incomplete line/,
    );
  });

  it("detects a changed recording event and a broken seal, naming every bad session", () => {
    const dir = tampered((lines) => {
      const ev = lines.findIndex((l) => l.text.startsWith("r ") && l.text.includes('"session_id":"s-2"'));
      lines[ev]!.text = lines[ev]!.text.replace("$ ls", "$ rm");
      const z = lines.findIndex((l) => l.text.startsWith("z ") && l.text.includes('"session_id":"s-1"'));
      lines[z]!.text = lines[z]!.text.replace("client closed", "timeout");
    });
    const r = verify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "gatehouse: writer w1: session s-1: seal signature does not verify (and 1 more problem(s); see --json)",
    );
    expect(report(dir).bad_sessions.map((b) => b.message)).toEqual([
      "writer w1: session s-1: seal signature does not verify",
      "writer w1: session s-2: event 1: hash mismatch (event was changed)",
    ]);
  });

  it("checks a segment header against its file and folder", () => {
    const dir = tampered((lines) => {
      lines[0]!.text = lines[0]!.text.replace('"writer":"w1"', '"writer":"w9"');
    });
    expect(verify(dir).stderr).toBe(`gatehouse: writer w1: 00000001.seg: its header names writer "w9"`);
  });
});

describe("the index (gatehouse.db) against the log", () => {
  let indexed: string;

  /** A copy of a data dir with `tamper` applied to its index. */
  function indexTampered(tamper: (db: Database.Database) => void): string {
    const dir = tempDir();
    cpSync(indexed, dir, { recursive: true });
    const db = new Database(join(dir, "gatehouse.db"));
    try {
      tamper(db);
    } finally {
      db.close();
    }
    return dir;
  }

  beforeAll(async () => {
    indexed = tempDir();
    cpSync(pristine, indexed, { recursive: true });
    const store = await openStore({ dataDir: indexed }); // creates and migrates the index tables
    await store.close();
    const db = new Database(join(indexed, "gatehouse.db"));
    try {
      indexEvidenceLog(db, { dataDir: indexed, limits: {} });
    } finally {
      db.close();
    }
  });

  it("passes when the index agrees, and says what it compared", () => {
    const r = verify(indexed);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^index: agrees with the log \(30 records, 4 checkpoints, 2 sessions compared; 0 record\(s\) not indexed yet\)$/m,
    );
    expect(r.stdout).toMatch(/^sessions: 2 verified \(2 sealed, 0 unsealed\)$/m); // not counted twice
  });

  it("accepts an index that lags behind the log", () => {
    const dir = indexTampered((db) => {
      db.prepare("DELETE FROM log_audit_events WHERE writer = 'w1' AND seq > 20").run();
      db.prepare("DELETE FROM log_checkpoints WHERE writer = 'w1' AND seq > 20").run();
    });
    expect(report(dir)).toMatchObject({ ok: true, index: { compared: true, records: 25, unindexed: 5 } });
  });

  // the index keeps each record as the text it was hashed as (and a few columns for queries)
  it("detects an indexed record that was changed", () => {
    const dir = indexTampered((db) =>
      db
        .prepare(
          `UPDATE log_audit_events SET text = replace(text, '"decision":"allow"', '"decision":"deny"'),
           decision = 'deny' WHERE writer = 'w1' AND seq = 17`,
        )
        .run(),
    );
    const r = verify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "gatehouse: index disagrees with the log at writer w1 seq 17: the indexed record does not hash to its hash (the row was changed)",
    );
  });

  it("detects a query column that no longer matches the record's text", () => {
    const dir = indexTampered((db) =>
      db.prepare("UPDATE log_audit_events SET decision = 'deny' WHERE writer = 'w1' AND seq = 17").run(),
    );
    expect(verify(dir).stderr).toBe(
      "gatehouse: index disagrees with the log at writer w1 seq 17: unreadable row (log_audit_events w1 seq 17: column decision differs)",
    );
  });

  it("detects an indexed record rewritten with its hash, and one the log lacks", () => {
    const dir = indexTampered((db) => {
      const row = db.prepare("SELECT text FROM log_audit_events WHERE writer = 'w2' AND seq = 3").get() as {
        text: string;
      };
      const rec = JSON.parse(row.text) as Record<string, unknown>;
      rec["data"] = { statement: "select harmless" };
      const text = canonicalJson(rec);
      db.prepare("UPDATE log_audit_events SET text = ?, hash = ? WHERE writer = 'w2' AND seq = 3").run(
        text,
        sha256Hex(text),
      );
    });
    expect(verify(dir).stderr).toMatch(
      /^gatehouse: index disagrees with the log at writer w2 seq 3: the index holds another record/,
    );
    const extra = indexTampered((db) =>
      db
        .prepare(
          `INSERT INTO log_audit_events (writer, seq, time, type, connection, session_id, decision, text, hash)
           SELECT writer, 26, time, type, connection, session_id, decision, replace(text, '"seq":25,', '"seq":26,'),
           hash FROM log_audit_events WHERE writer = 'w1' AND seq = 25`,
        )
        .run(),
    );
    expect(verify(extra).stderr).toBe(
      "gatehouse: index disagrees with the log at writer w1 seq 26: the index holds a record the log lacks",
    );
  });

  it("detects a changed checkpoint row and a changed recording event row", () => {
    const cp = indexTampered((db) =>
      db.prepare("UPDATE log_checkpoints SET time = '2020-01-01T00:00:00.000Z' WHERE writer = 'w1' AND seq = 20").run(),
    );
    expect(verify(cp).stderr).toBe(
      "gatehouse: index disagrees with the log at writer w1 checkpoint seq 20: the index holds another checkpoint",
    );
    const ev = indexTampered((db) =>
      db
        .prepare(
          `UPDATE recording_events SET text = replace(text, 'file-', 'evil-') WHERE session_id = 's-2' AND seq = 2`,
        )
        .run(),
    );
    expect(verify(ev).stderr).toBe(
      "gatehouse: index disagrees with the log at writer w1 session s-2 event 2: the indexed events do not form a chain",
    );
  });

  it("verifies a data dir from before the evidence log (no index tables) as before", async () => {
    const dir = tempDir();
    const key = newKey();
    const store = await openStore({ dataDir: dir });
    const log = await AuditLog.open(store, { signingKey: key, checkpointEvery: 500, checkpointIntervalMs: 0 });
    for (let i = 1; i <= 1234; i++) await log.append(event(i)); // more than one page of 1000
    await log.close();
    const recorder = new SessionRecorder(store, { signingKey: key });
    const rec = await recorder.start({ sessionId: "s-1", connection: "app-host", protocol: "ssh" });
    rec.record("output", "hello\n");
    await rec.seal("client closed");
    await recorder.close();
    await store.close();
    const db = new Database(join(dir, "gatehouse.db"));
    db.exec(`DROP TABLE log_audit_events; DROP TABLE log_checkpoints; DROP TABLE log_watermarks;
      ALTER TABLE sessions DROP COLUMN writer; ALTER TABLE recording_events DROP COLUMN text;
      DELETE FROM kysely_migration WHERE name LIKE '0005%';`);
    db.close();
    const r = verify(dir);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^audit log: 1234 records verified \(seq 1\.\.1234\), last hash [0-9a-f]{64}$/m);
    expect(r.stdout).toMatch(/^checkpoints: 3 signatures verified, last at seq 1234, 0 record\(s\) after it/m);
    expect(r.stdout).toMatch(/^sessions: 1 verified \(1 sealed, 0 unsealed\)$/m);
    expect(report(dir)).toMatchObject({ ok: true, records: 1234, last_seq: 1234, writers: [] });
  });

  it("verifies a data dir with the legacy tables and an evidence log side by side", async () => {
    const dir = tempDir();
    const store = await openStore({ dataDir: dir });
    const log = await AuditLog.open(store, { signingKey: newKey(), checkpointEvery: 5, checkpointIntervalMs: 0 });
    for (let i = 1; i <= 7; i++) await log.append(event(i));
    await log.close();
    await store.close();
    cpSync(join(pristine, "evidence"), join(dir, "evidence"), { recursive: true });
    const r = verify(dir);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^audit log: 37 records in 2 writer chain\(s\) and the legacy chain/);
    expect(r.stdout).toMatch(/^legacy chain: 7 records verified \(seq 1\.\.7\), .*last at seq 7/m);
    const db = new Database(join(dir, "gatehouse.db"));
    db.prepare("UPDATE audit_events SET data = '{}' WHERE seq = 3").run();
    db.close();
    expect(verify(dir).stderr).toBe("gatehouse: legacy chain: audit event seq 3: hash mismatch (record was changed)");
  });
});

describe("a log written by the gateway's own store (SegmentStore + AuditLog + SessionRecorder)", () => {
  it("verifies, and its index agrees", async () => {
    const dir = tempDir();
    const key = newKey();
    const store = await openEvidenceStore({ dataDir: dir, durability: "os", maxSegmentBytes: 8192 });
    const log = await AuditLog.open(store, { signingKey: key, checkpointEvery: 10, checkpointIntervalMs: 0 });
    const recorder = new SessionRecorder(store, { signingKey: key });
    const rec = await recorder.start({ sessionId: "s-1", connection: "app-host", protocol: "ssh" });
    const records: AuditRecord[] = [];
    for (let i = 1; i <= 40; i++) {
      records.push(await log.append(event(i)));
      rec.record(i % 2 ? "output" : "input", `line ${i}\n`);
    }
    await rec.seal("client closed");
    await recorder.close();
    await log.close();
    await store.close();
    const r = verify(dir);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const json = report(dir);
    expect(json).toMatchObject({
      ok: true,
      records: 40,
      last_seq: 40,
      last_hash: records.at(-1)!.hash,
      unsigned_tail: 0,
      sessions: { verified: 1, sealed: 1 },
      index: { compared: true, records: 40, sessions: 1, unindexed: 0, problems: [] },
    });
    expect(json.writers.map((w) => w.writer)).toEqual([store.writer]);
  });
});

describe("checkpoints kept outside the data dir (what an audit sink received): audit verify --checkpoints", () => {
  /** A log written by the gateway's own store, whose checkpoints also went to a real file sink. */
  async function logWithSink(): Promise<{ dir: string; sinkFile: string; key: ReturnType<typeof newKey> }> {
    const dir = tempDir();
    const sinkFile = join(tempDir(), "audit.jsonl");
    const key = newKey();
    const sinks = new SinkForwarder(createSinks([{ type: "file", path: sinkFile }]));
    const store = await openEvidenceStore({ dataDir: dir, durability: "os" });
    const log = await AuditLog.open(store, {
      signingKey: key,
      checkpointEvery: 10,
      checkpointIntervalMs: 0,
      onCommitted: (records) => sinks.enqueue(records),
      onCheckpoint: (cp) => sinks.enqueueCheckpoint(cp),
    });
    for (let i = 1; i <= 30; i++) await log.append(event(i));
    await log.close();
    await store.close();
    await sinks.close();
    return { dir, sinkFile, key };
  }

  it("pass while the log holds every record they sign", async () => {
    const { dir, sinkFile } = await logWithSink();
    const r = report(dir, "--checkpoints", sinkFile);
    expect(r).toMatchObject({ ok: true, outside_checkpoints: { checked: 3, problems: [] } });
  });

  it("show a log cut short together with its last checkpoint, which verify alone cannot see", async () => {
    const { dir, sinkFile } = await logWithSink();
    // an insider removes the last 7 records and the checkpoint at 30: what is left is a consistent, shorter log
    const w = store1Writer(dir);
    const lines = readLog(dir, w);
    const cut = lines.findIndex((l) => l.text.startsWith("a ") && valueOf(l)["seq"] === 24);
    writeLog(dir, w, lines.slice(0, cut));
    rmIndex(dir);
    expect(verify(dir).code).toBe(0);
    const r = verify(dir, "--checkpoints", sinkFile);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `gatehouse: writer ${w}: checkpoint at seq 30 kept outside: the log ends at seq 23, so records 24..30 were cut from it`,
    );
  });

  it("refuse a note that was altered or signed by another key", async () => {
    const { dir, sinkFile } = await logWithSink();
    const text = readFileSync(sinkFile, "utf8").replace(/\\n30\\n/, "\\n31\\n");
    writeFileSync(sinkFile, text);
    expect(verify(dir, "--checkpoints", sinkFile).stderr).toMatch(
      /checkpoint at seq 31 kept outside: signature does not verify/,
    );
  });
});

function store1Writer(dir: string): string {
  return readdirSync(join(dir, "evidence")).filter((n) => /^w\d+$/.test(n))[0]!;
}

/** The index is only a copy: removed, verify checks the log alone. */
function rmIndex(dir: string): void {
  for (const f of readdirSync(dir)) if (f.startsWith("gatehouse.db")) rmSync(join(dir, f));
}
