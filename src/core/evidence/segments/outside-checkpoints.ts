/**
 * Checkpoints kept outside the data directory (the audit sinks receive every signed note) checked against the log:
 * what shows that a log was cut short, which the log alone cannot show once its last records and checkpoints are
 * gone together. `gatehouse audit verify --checkpoints FILE` reads a sink's JSON lines (items of type
 * `audit.checkpoint`) and checks each note: its signature (a known or the pinned key), and that the writer's log
 * still holds a record at its seq with its hash.
 */
import type { KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { keyIdOf, publicKeyFromPem } from "../signing.js";
import { parseLine } from "./format.js";
import { parseCheckpointNote, verifyCheckpointNote, type SignedCheckpoint } from "./note.js";
import { evidenceDir, listSegments, listWriters, readSegmentLines, segmentPath } from "./reader.js";

export interface OutsideCheckpointReport {
  /** Notes read from the file. */
  checked: number;
  /** One line per note that does not hold against the log. */
  problems: string[];
}

/** The signed notes in a file of JSON lines as the audit sinks write them (other lines are skipped). */
export function readOutsideCheckpoints(path: string): string[] {
  const notes: string[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line.includes('"audit.checkpoint"')) continue;
    try {
      const item = JSON.parse(line) as { type?: unknown; note?: unknown };
      if (item.type === "audit.checkpoint" && typeof item.note === "string") notes.push(item.note);
    } catch {
      // not a line of ours
    }
  }
  return notes;
}

/** Every line of a writer's segments, in order (complete lines only). */
function* writerLines(dataDir: string, writer: string): Generator<string> {
  const dir = join(evidenceDir(dataDir), writer);
  for (const n of listSegments(dir)) for (const l of readSegmentLines(segmentPath(dir, n)).lines) yield l.line;
}

/** The keys the log holds (`k` lines of every writer whose id matches its bytes), or only the pinned one. */
function logKeys(dataDir: string, pinned: KeyObject | undefined): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  if (pinned) return keys.set(keyIdOf(pinned), pinned);
  for (const writer of listWriters(dataDir)) {
    for (const line of writerLines(dataDir, writer)) {
      if (!line.startsWith("k ")) continue;
      try {
        const p = parseLine(line);
        if (p.tag !== "k") continue;
        const key = publicKeyFromPem(String(p.value["public_key"]));
        if (keyIdOf(key) === p.value["key_id"]) keys.set(keyIdOf(key), key);
      } catch {
        // verify reports unreadable key lines
      }
    }
  }
  return keys;
}

/** Checks each note against the writer's log: signed by a trusted key, and the record at its seq still there. */
export function checkOutsideCheckpoints(
  dataDir: string,
  notes: readonly string[],
  options: { publicKey?: KeyObject } = {},
): OutsideCheckpointReport {
  const keys = logKeys(dataDir, options.publicKey);
  const problems: string[] = [];
  const byWriter = new Map<string, SignedCheckpoint[]>();
  for (const note of notes) {
    let cp: SignedCheckpoint;
    try {
      cp = parseCheckpointNote(note);
    } catch (err) {
      problems.push(`checkpoint kept outside: not a signed note (${err instanceof Error ? err.message : String(err)})`);
      continue;
    }
    const key = keys.get(cp.key_id);
    const where = `writer ${cp.writer}: checkpoint at seq ${cp.seq} kept outside`;
    if (!key)
      problems.push(
        `${where}: signed by ${options.publicKey ? "another key than the pinned one" : `unknown key ${cp.key_id}`}`,
      );
    else if (!verifyCheckpointNote(note, key)) problems.push(`${where}: signature does not verify (forged or altered)`);
    else byWriter.set(cp.writer, [...(byWriter.get(cp.writer) ?? []), cp]);
  }
  const writers = new Set(listWriters(dataDir));
  for (const [writer, cps] of byWriter) {
    if (!writers.has(writer)) {
      problems.push(`writer ${writer}: its log is gone, but a checkpoint kept outside covers seq ${cps[0]!.seq}`);
      continue;
    }
    const wanted = new Map(cps.map((c) => [c.seq, c]));
    const found = new Map<number, string>();
    let last = 0;
    for (const line of writerLines(dataDir, writer)) {
      if (!line.startsWith("a ")) continue;
      try {
        const p = parseLine(line);
        if (p.tag !== "a") continue;
        const seq = Number(p.value["seq"]);
        last = Math.max(last, seq);
        if (wanted.has(seq)) found.set(seq, p.hash);
      } catch {
        // verify reports unreadable lines
      }
    }
    for (const cp of cps) {
      const hash = found.get(cp.seq);
      const where = `writer ${writer}: checkpoint at seq ${cp.seq} kept outside`;
      if (hash === undefined && cp.seq > last) {
        problems.push(`${where}: the log ends at seq ${last}, so records ${last + 1}..${cp.seq} were cut from it`);
      } else if (hash === undefined) problems.push(`${where}: the log has no record at that seq`);
      else if (hash !== cp.hash) problems.push(`${where}: the log's record there has another hash (changed)`);
    }
  }
  return { checked: notes.length, problems };
}
