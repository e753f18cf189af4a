import type { KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import type { Store } from "../store/types.js";
import { CorruptRecordError } from "../store/types.js";
import type { AuditRecord } from "./audit-event.js";
import { ZERO_HASH } from "./canonical.js";
import { auditRecordHash, checkpointPayload, recordingEventHash, sealPayload, sessionHeadHash } from "./chain.js";
import type { Checkpoint, RecordingEvent, SessionRecord } from "./records.js";
import { readStoredRecording } from "./recorder.js";
import { referenceIn, referenceProblem } from "./request-reference.js";
import { evidenceDir } from "./segments/reader.js";
import {
  verifyLog,
  type ChainSummary,
  type LogIndexReport,
  type SessionCounts,
  type WriterReport,
} from "./segments/verify-log.js";
import { keyIdOf, publicKeyFromPem, verifyCanonical } from "./signing.js";

export type { ChainSummary, LogIndexReport, SessionCounts, WriterReport } from "./segments/verify-log.js";
import { checkOutsideCheckpoints, type OutsideCheckpointReport } from "./segments/outside-checkpoints.js";

export interface VerifyOptions {
  /** Trust only this key (signatures by any other key fail), instead of the keys stored in the data dir. */
  publicKey?: KeyObject;
  /**
   * The data directory: its evidence log (DATA/evidence, segment files) is verified writer by writer, and the
   * store's index of it is compared with it. Default: the log of the store's own writer's data dir when the
   * store writes one (SegmentStore), else none (the store's tables only).
   */
  dataDir?: string;
  /**
   * Signed checkpoint notes kept outside the data dir (what the audit sinks received): each must verify and
   * match the writer's record at its seq, so a log cut short together with its last checkpoints shows.
   */
  outsideCheckpoints?: readonly string[];
}

export type AuditProblemReason =
  | "changed" // a record's content no longer matches its hash
  | "rehashed" // records were changed and the chain recomputed: caught by a signed checkpoint
  | "dropped"
  | "inserted"
  | "reordered"
  | "chain-broken"
  | "unreadable"
  | "checkpoint-signature"
  | "checkpoint-key"
  | "damaged"; // a line of the evidence log that cannot be read, with readable lines after it

export interface AuditProblem {
  /** The first bad event (for "rehashed": the first event of the range the failed checkpoint covers). */
  seq: number;
  /** Last seq of the range, when only a range can be named. */
  to_seq?: number;
  reason: AuditProblemReason;
  message: string;
  /** The evidence log writer whose chain this is; absent for the legacy tables' chain. */
  writer?: string;
  /** Where in the writer's log: the segment file and the byte offset of the line. */
  segment?: string;
  offset?: number;
}

export interface SessionProblem {
  session_id: string;
  message: string;
}

/**
 * What verify found. The top-level counts are totals over every chain (each writer's and the legacy one);
 * `first_seq`, `last_seq`, `last_hash` and `last_checkpoint_seq` name a single chain's, so they are present only
 * when the data dir holds exactly one chain (`writers` and `legacy` have each chain's).
 */
export interface VerifyReport extends ChainSummary {
  ok: boolean;
  key_ids: string[];
  sessions: SessionCounts;
  /**
   * The first problem in an audit chain (the legacy one, then each writer's by name); checking a chain stops at
   * its first problem.
   */
  audit_error?: AuditProblem;
  bad_sessions: SessionProblem[];
  warnings: string[];
  /** Each writer of the evidence log (DATA/evidence/<writer>), by name. Empty for a data dir without one. */
  writers: WriterReport[];
  /** The chain of the store's audit_events table (data written before the evidence log), when it holds any. */
  legacy?: ChainSummary;
  /** How the store's index of the evidence log compares with the log; absent without a log or a store. */
  index?: LogIndexReport;
  /** Every problem found, first the audit chains', then the index's, then the sessions': one line each. */
  problems: string[];
  /** With `outsideCheckpoints`: how many were checked against the log, and what did not hold. */
  outside_checkpoints?: OutsideCheckpointReport;
}

class Problem extends Error {
  constructor(readonly problem: AuditProblem) {
    super(problem.message);
  }
}

const fail = (seq: number, reason: AuditProblemReason, message: string, toSeq?: number): never => {
  throw new Problem({ seq, reason, message, ...(toSeq !== undefined ? { to_seq: toSeq } : {}) });
};

async function loadKeys(store: Store, options: VerifyOptions, warnings: string[]): Promise<Map<string, KeyObject>> {
  const keys = new Map<string, KeyObject>();
  if (options.publicKey) {
    keys.set(keyIdOf(options.publicKey), options.publicKey);
    return keys;
  }
  for (const k of await store.listSigningKeys()) {
    try {
      const key = publicKeyFromPem(k.public_key);
      // the id is derived from the key; a stored row whose id does not match it is not trusted
      if (keyIdOf(key) !== k.key_id) warnings.push(`signing key ${k.key_id}: id does not match the stored key`);
      else keys.set(k.key_id, key);
    } catch {
      warnings.push(`signing key ${k.key_id}: unreadable public key`);
    }
  }
  return keys;
}

/** Checkpoints in seq order, one page at a time, with a look-ahead of one. */
class CheckpointCursor {
  #page: Checkpoint[] = [];
  #i = 0;
  #from = 0;
  #done = false;
  constructor(private readonly store: Store) {}
  async peek(): Promise<Checkpoint | undefined> {
    if (this.#i >= this.#page.length && !this.#done) {
      this.#page = await this.store.listCheckpoints({ fromSeq: this.#from, limit: 1000 });
      this.#i = 0;
      if (this.#page.length < 1000) this.#done = true;
      const last = this.#page.at(-1);
      if (last) this.#from = last.seq + 1;
    }
    return this.#page[this.#i];
  }
  next(): void {
    this.#i++;
  }
}

/** The legacy table's records in seq order (the chain written before the evidence log). */
async function* legacyAudit(store: Store, fromSeq = 0): AsyncGenerator<AuditRecord> {
  let from = fromSeq;
  const limit = 1000;
  for (;;) {
    const page = await store.readAudit({ fromSeq: from, limit, legacy: true });
    for (const r of page) yield r;
    const last = page.at(-1);
    if (page.length < limit || last === undefined) return;
    from = last.seq + 1;
  }
}

async function findRecordWithHash(store: Store, hash: string, fromSeq: number): Promise<AuditRecord | undefined> {
  try {
    for await (const r of legacyAudit(store, fromSeq)) if (r.hash === hash) return r;
  } catch {
    // diagnosis only; an unreadable record later on is reported when the walk reaches it
  }
  return undefined;
}

/** Why the record at `r.seq` does not link to its predecessor. Always throws a Problem. */
async function diagnoseLink(
  store: Store,
  r: AuditRecord,
  prev: AuditRecord | undefined,
  prevPrevHash: string | undefined,
  selfOk: boolean,
): Promise<never> {
  if (prev && prevPrevHash !== undefined && r.prev_hash === prevPrevHash) {
    return fail(prev.seq, "inserted", `audit event seq ${prev.seq}: inserted (seq ${r.seq} links past it)`);
  }
  const later = await findRecordWithHash(store, r.prev_hash, r.seq + 1);
  if (later) {
    return fail(
      r.seq,
      "reordered",
      `audit event seq ${r.seq}: out of order (it links to the event now at seq ${later.seq})`,
    );
  }
  if (!selfOk && auditRecordHash({ ...r, seq: r.seq + 1 }) === r.hash) {
    return fail(r.seq, "dropped", `audit event seq ${r.seq}: dropped (later events were renumbered)`);
  }
  if (selfOk && prev) {
    return fail(
      prev.seq,
      "changed",
      `audit event seq ${prev.seq}: changed (its hash was recomputed; seq ${r.seq} still links to the original)`,
    );
  }
  return fail(
    r.seq,
    "chain-broken",
    prev
      ? `audit event seq ${r.seq}: prev_hash does not match the hash of seq ${prev.seq}`
      : `audit event seq ${r.seq}: prev_hash is not the chain start`,
  );
}

async function verifyAudit(store: Store, keys: Map<string, KeyObject>, pinned: boolean, report: VerifyReport) {
  const cps = new CheckpointCursor(store);
  let prev: AuditRecord | undefined;
  let prevPrevHash: string | undefined;
  let lastGoodCp = 0;

  const checkCheckpoint = (cp: Checkpoint, record: AuditRecord | undefined): void => {
    const key = keys.get(cp.key_id);
    if (!key) {
      fail(
        cp.seq,
        "checkpoint-key",
        `checkpoint at seq ${cp.seq}: ${pinned ? "not signed by the pinned key" : `signed by unknown key ${cp.key_id}`}`,
      );
    } else if (!verifyCanonical(key, checkpointPayload(cp), cp.signature)) {
      fail(
        cp.seq,
        "checkpoint-signature",
        `checkpoint at seq ${cp.seq}: signature does not verify (forged or altered)`,
      );
    } else if (record && cp.hash !== record.hash) {
      const from = Math.max(lastGoodCp + 1, report.first_seq ?? 1);
      fail(
        from,
        "rehashed",
        `audit events seq ${from}..${cp.seq}: chain does not match the signed checkpoint at seq ${cp.seq} ` +
          `(an event was changed and the chain recomputed)`,
        cp.seq,
      );
    }
    report.checkpoints++;
    report.last_checkpoint_seq = cp.seq;
    lastGoodCp = cp.seq;
  };

  try {
    for await (const r of legacyAudit(store)) {
      if (prev === undefined) {
        report.first_seq = r.seq;
        if (r.seq !== 1) {
          report.warnings.push(`the log starts at seq ${r.seq} (earlier events were removed); verified from there`);
        }
        // checkpoints over removed events: only their signatures can still be checked
        for (let cp = await cps.peek(); cp && cp.seq < r.seq; cp = await cps.peek()) {
          checkCheckpoint(cp, undefined);
          cps.next();
        }
      } else if (r.seq !== prev.seq + 1) {
        const e = prev.seq + 1;
        if (Number.isSafeInteger(r.seq) && r.seq > e) {
          fail(e, "dropped", `audit event seq ${e}: dropped (the log jumps from seq ${prev.seq} to ${r.seq})`);
        }
        fail(e, "inserted", `audit event seq ${e}: inserted (an event stored as seq ${r.seq} follows seq ${prev.seq})`);
      }
      const selfOk = auditRecordHash(r) === r.hash;
      const expectedPrev = prev ? prev.hash : r.seq === 1 ? ZERO_HASH : r.prev_hash;
      if (r.prev_hash !== expectedPrev) await diagnoseLink(store, r, prev, prevPrevHash, selfOk);
      if (!selfOk) fail(r.seq, "changed", `audit event seq ${r.seq}: hash mismatch (record was changed)`);
      const cp = await cps.peek();
      if (cp && cp.seq === r.seq) {
        checkCheckpoint(cp, r);
        cps.next();
      }
      prevPrevHash = prev?.hash;
      prev = r;
      report.records++;
      report.last_seq = r.seq;
      report.last_hash = r.hash;
    }
    // a checkpoint beyond the last record vouches for events that are gone
    const cp = await cps.peek();
    if (cp) {
      checkCheckpoint(cp, undefined);
      const e = (prev?.seq ?? 0) + 1;
      fail(e, "dropped", `audit event seq ${e}: dropped (a signed checkpoint covers up to seq ${cp.seq})`);
    }
  } catch (err) {
    if (err instanceof Problem) report.audit_error = err.problem;
    else if (err instanceof CorruptRecordError) {
      const seq = Number(/seq (\d+)/.exec(err.key)?.[1] ?? (prev?.seq ?? 0) + 1);
      report.audit_error = {
        seq,
        reason: "unreadable",
        message: `audit event seq ${seq}: unreadable (${err.message})`,
      };
    } else throw err;
  }
  report.unsigned_tail = (report.last_seq ?? 0) - Math.max(lastGoodCp, (report.first_seq ?? 1) - 1);
  if (!report.audit_error && report.records > 0 && report.checkpoints === 0) {
    report.warnings.push("no signed checkpoint: the chain is intact but nothing vouches for it");
  }
}

async function verifySession(s: SessionRecord, store: Store, keys: Map<string, KeyObject>, pinned: boolean) {
  const id = s.session_id;
  let prevHash = sessionHeadHash(s);
  let n = 0;
  let lastT = 0;
  try {
    for await (const ev of readStoredRecording(store, id)) {
      n++;
      if (ev.seq !== n) return `event ${n} is missing (next stored is ${ev.seq})`;
      if (ev.prev_hash !== prevHash) return `event ${n}: chain broken (prev_hash does not match)`;
      if (recordingEventHash(ev) !== ev.hash) return `event ${n}: hash mismatch (event was changed)`;
      if (ev.t < lastT) return `event ${n}: time goes backwards`;
      const bad = await legacyReferenceProblem(store, ev);
      if (bad !== undefined) return `event ${n}: ${bad}`;
      lastT = ev.t;
      prevHash = ev.hash;
    }
  } catch (err) {
    if (err instanceof CorruptRecordError) return `event ${n + 1}: unreadable (${err.message})`;
    throw err;
  }
  if (!s.seal) return undefined;
  const key = keys.get(s.seal.key_id);
  if (!key) return pinned ? "seal not signed by the pinned key" : `seal signed by unknown key ${s.seal.key_id}`;
  if (!verifyCanonical(key, sealPayload(s.seal), s.seal.signature)) return "seal signature does not verify";
  if (s.seal.count !== n) return `seal covers ${s.seal.count} events but ${n} are stored`;
  if (s.seal.last_hash !== prevHash) return "seal does not match the last event (recording was changed)";
  return undefined;
}

/** A request event of a legacy session may refer to a record of the legacy chain (the gate over a legacy store). */
async function legacyReferenceProblem(store: Store, ev: RecordingEvent): Promise<string | undefined> {
  const ref = referenceIn(ev);
  if (ref === undefined || typeof ref === "string") return ref;
  const [record] = ref.writer === undefined ? await store.readAudit({ legacy: true, fromSeq: ref.seq, limit: 1 }) : [];
  return referenceProblem(ref, ev.session_id, undefined, record?.seq === ref.seq ? record : undefined);
}

/** The store's sessions, except those recorded in the evidence log (`inLog`: verified from the log). */
async function verifySessions(
  store: Store,
  keys: Map<string, KeyObject>,
  pinned: boolean,
  report: VerifyReport,
  inLog: ReadonlySet<string>,
) {
  let afterId: string | undefined;
  for (;;) {
    const page: SessionRecord[] = await store.listSessions({
      limit: 500,
      ...(afterId !== undefined ? { afterId } : {}),
      legacy: true,
    });
    for (const s of page) {
      if (inLog.has(s.session_id)) continue;
      const problem = await verifySession(s, store, keys, pinned);
      if (problem)
        report.bad_sessions.push({ session_id: s.session_id, message: `session ${s.session_id}: ${problem}` });
      else report.sessions.verified++;
      if (s.seal) report.sessions.sealed++;
      else report.sessions.unsealed++;
    }
    if (page.length < 500) break;
    afterId = page.at(-1)?.session_id;
  }
  if (report.sessions.unsealed > 0) {
    report.warnings.push(`${report.sessions.unsealed} session(s) not sealed (still running, or the gateway stopped)`);
  }
}

function emptyReport(): VerifyReport {
  return {
    ok: false,
    records: 0,
    checkpoints: 0,
    unsigned_tail: 0,
    key_ids: [],
    sessions: { verified: 0, sealed: 0, unsealed: 0 },
    bad_sessions: [],
    warnings: [],
    writers: [],
    problems: [],
  };
}

function chainSummary(r: VerifyReport): ChainSummary {
  return {
    records: r.records,
    ...(r.first_seq !== undefined ? { first_seq: r.first_seq } : {}),
    ...(r.last_seq !== undefined ? { last_seq: r.last_seq } : {}),
    ...(r.last_hash !== undefined ? { last_hash: r.last_hash } : {}),
    checkpoints: r.checkpoints,
    ...(r.last_checkpoint_seq !== undefined ? { last_checkpoint_seq: r.last_checkpoint_seq } : {}),
    unsigned_tail: r.unsigned_tail,
  };
}

/** The legacy tables: the audit chain of audit_events and the sessions not recorded in the evidence log. */
async function verifyLegacy(store: Store, options: VerifyOptions, inLog: ReadonlySet<string>): Promise<VerifyReport> {
  const report = emptyReport();
  const keys = await loadKeys(store, options, report.warnings);
  report.key_ids = [...keys.keys()];
  const pinned = options.publicKey !== undefined;
  await verifyAudit(store, keys, pinned, report);
  await verifySessions(store, keys, pinned, report, inLog);
  return report;
}

/** The data dir of a store that writes an evidence log: its writer's folder is DATA/evidence/<writer>. */
function storeDataDir(store: Store | undefined): string | undefined {
  return store?.writer !== undefined ? dirname(dirname(store.location)) : undefined;
}

/**
 * Verifies a data dir's evidence. The evidence log (DATA/evidence, the source of truth) writer by writer:
 * each writer's audit chain, its signed checkpoints and the session recordings it holds, and that the store's
 * index of the log agrees with it (segments/verify-log.ts). The store's legacy tables as before the log: the
 * audit chain from the first retained record, every checkpoint's signature and that it names the record at its
 * seq, and each session recording's chain and seal. Reports the first bad event of each chain and every bad
 * session. Reads only.
 *
 * `store` may be absent for a data dir that holds only an evidence log (no gatehouse.db).
 */
export async function verifyEvidence(store: Store | undefined, options: VerifyOptions = {}): Promise<VerifyReport> {
  const report = emptyReport();
  const dataDir = options.dataDir ?? storeDataDir(store);
  let inLog: ReadonlySet<string> = new Set();
  if (dataDir !== undefined && existsSync(evidenceDir(dataDir))) {
    const log = await verifyLog(dataDir, {
      ...(options.publicKey ? { publicKey: options.publicKey } : {}),
      ...(store ? { index: store } : {}),
    });
    inLog = log.sessionIds;
    report.writers = log.report.writers;
    report.key_ids = log.report.key_ids;
    report.bad_sessions.push(...log.report.bad_sessions);
    report.warnings.push(...log.report.warnings);
    if (log.report.index) report.index = log.report.index;
  }
  const legacy = store ? await verifyLegacy(store, options, inLog) : undefined;
  const chains: ChainSummary[] = [];
  if (legacy) {
    if (legacy.records > 0 || legacy.checkpoints > 0 || legacy.audit_error) {
      report.legacy = chainSummary(legacy);
      chains.push(report.legacy);
    }
    if (legacy.audit_error) {
      report.audit_error = legacy.audit_error;
      // with writers' chains beside it, say which chain the problem is in
      if (report.writers.length > 0) report.audit_error.message = `legacy chain: ${legacy.audit_error.message}`;
    }
    for (const id of legacy.key_ids) if (!report.key_ids.includes(id)) report.key_ids.push(id);
    report.bad_sessions.unshift(...legacy.bad_sessions);
    report.warnings.unshift(...legacy.warnings);
    report.sessions = { ...legacy.sessions };
  }
  chains.push(...report.writers);
  for (const w of report.writers) {
    report.sessions.verified += w.sessions.verified;
    report.sessions.sealed += w.sessions.sealed;
    report.sessions.unsealed += w.sessions.unsealed;
    report.audit_error ??= w.error;
  }
  for (const c of chains) {
    report.records += c.records;
    report.checkpoints += c.checkpoints;
    report.unsigned_tail += c.unsigned_tail;
  }
  const only = chains.length === 1 ? chains[0] : undefined;
  if (only) {
    if (only.first_seq !== undefined) report.first_seq = only.first_seq;
    if (only.last_seq !== undefined) report.last_seq = only.last_seq;
    if (only.last_hash !== undefined) report.last_hash = only.last_hash;
    if (only.last_checkpoint_seq !== undefined) report.last_checkpoint_seq = only.last_checkpoint_seq;
  }
  report.problems = [
    ...(legacy?.audit_error ? [legacy.audit_error.message] : []),
    ...report.writers.flatMap((w) => (w.error ? [w.error.message] : [])),
    ...(report.index?.problems ?? []),
    ...report.bad_sessions.map((b) => b.message),
  ];
  if (options.outsideCheckpoints !== undefined && dataDir !== undefined) {
    report.outside_checkpoints = checkOutsideCheckpoints(dataDir, options.outsideCheckpoints, {
      ...(options.publicKey ? { publicKey: options.publicKey } : {}),
    });
    report.problems.push(...report.outside_checkpoints.problems);
  }
  report.ok = report.problems.length === 0;
  return report;
}
