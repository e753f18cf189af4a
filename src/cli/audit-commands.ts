import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { evidenceDir } from "../core/evidence/segments/reader.js";
import { verifyEvidence, type ChainSummary, type VerifyReport, type WriterReport } from "../core/evidence/verify.js";
import { STORE_FILE } from "../core/store/index.js";
import { keyIdOf, publicKeyFromPem } from "../core/evidence/signing.js";
import type { AuditRecord } from "../core/evidence/audit-event.js";
import { readOutsideCheckpoints } from "../core/evidence/segments/outside-checkpoints.js";
import { CliError } from "./cli-error.js";
import { DEFAULT_DATA_DIR, withReadOnlyStore } from "./read-store.js";

function readCheckpointsFile(path: string): string[] {
  try {
    return readOutsideCheckpoints(path);
  } catch (err) {
    throw new CliError(`--checkpoints ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function readPinnedKey(path: string) {
  try {
    return publicKeyFromPem(readFileSync(path, "utf8"));
  } catch (err) {
    throw new CliError(`--public-key ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The summary of a data dir that holds only the legacy tables: as it always was. */
function legacySummary(r: VerifyReport): string[] {
  return [
    r.records === 0
      ? "audit log: empty"
      : `audit log: ${r.records} records verified (seq ${r.first_seq}..${r.last_seq}), last hash ${r.last_hash}`,
    `checkpoints: ${r.checkpoints} signatures verified` +
      (r.last_checkpoint_seq !== undefined ? `, last at seq ${r.last_checkpoint_seq}` : "") +
      `, ${r.unsigned_tail} record(s) after it not yet signed` +
      (r.key_ids.length ? ` (keys ${r.key_ids.join(", ")})` : ""),
  ];
}

/** One line per chain: `writer w1: 25 records verified (seq 1..25), last hash ...; 3 checkpoints ...`. */
function chainLine(label: string, c: ChainSummary | WriterReport): string {
  const records =
    c.records === 0
      ? "empty"
      : `${c.records} records verified (seq ${c.first_seq}..${c.last_seq}), last hash ${c.last_hash}`;
  const checkpoints =
    `${c.checkpoints} checkpoint(s) verified` +
    (c.last_checkpoint_seq !== undefined ? `, last at seq ${c.last_checkpoint_seq}` : "") +
    `, ${c.unsigned_tail} record(s) after it not yet signed`;
  const torn = "torn_tail_bytes" in c && c.torn_tail_bytes > 0 ? `; torn tail of ${c.torn_tail_bytes} byte(s)` : "";
  return `${label}: ${records}; ${checkpoints}${torn}`;
}

function summary(r: VerifyReport): string {
  const lines =
    r.writers.length === 0
      ? legacySummary(r)
      : [
          `audit log: ${r.records} records in ${r.writers.length} writer chain(s)` +
            (r.legacy ? " and the legacy chain" : "") +
            `, ${r.checkpoints} checkpoint signature(s) verified` +
            (r.key_ids.length ? ` (keys ${r.key_ids.join(", ")})` : ""),
          ...r.writers.map((w) => chainLine(`writer ${w.writer}`, w)),
          ...(r.legacy ? [chainLine("legacy chain", r.legacy)] : []),
        ];
  lines.push(
    `sessions: ${r.sessions.verified} verified (${r.sessions.sealed} sealed, ${r.sessions.unsealed} unsealed)`,
  );
  const ix = r.index;
  if (ix?.compared) {
    lines.push(
      `index: agrees with the log (${ix.records} records, ${ix.checkpoints} checkpoints, ${ix.sessions} sessions ` +
        `compared; ${ix.unindexed} record(s) not indexed yet)`,
    );
  } else if (r.writers.length > 0 && !ix) lines.push("index: none (no gatehouse.db), the log alone was verified");
  if (r.outside_checkpoints) {
    lines.push(`checkpoints kept outside: ${r.outside_checkpoints.checked} match the log`);
  }
  lines.push(...r.warnings.map((w) => `warning: ${w}`));
  return `${lines.join("\n")}\n`;
}

function formatRecord(r: AuditRecord): string {
  const who = r.identity ? ` ${r.identity.subject}` : "";
  const where = r.connection ? ` @${r.connection}` : "";
  const decision = r.decision ? ` ${r.decision}${r.rule ? ` (${r.rule})` : ""}` : "";
  const data = r.data && Object.keys(r.data).length ? ` ${JSON.stringify(r.data)}` : "";
  return `${r.seq}\t${r.time}\t${r.type}${who}${where}${decision}${data}`;
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command("audit").description("Inspect and verify the tamper-evident audit log");

  audit
    .command("verify")
    .description(
      "Recompute every writer's audit hash chain in the evidence log (and the legacy tables'), checkpoint " +
        "signatures and session seals, and check the index against the log; exit 1 on any break",
    )
    .option(
      "-d, --data <dir>",
      "data directory holding evidence/ and gatehouse.db (env GATEHOUSE_DATA)",
      DEFAULT_DATA_DIR,
    )
    .option("--public-key <file>", "trust only this Ed25519 public key (PEM) instead of the keys in the store")
    .option(
      "--checkpoints <file>",
      "also check the signed checkpoints an audit sink received (its JSON lines file): each must match the log",
    )
    .option("--json", "print the full report as JSON")
    .action(async (opts: { data: string; publicKey?: string; checkpoints?: string; json?: boolean }) => {
      const publicKey = opts.publicKey !== undefined ? readPinnedKey(opts.publicKey) : undefined;
      const outside = opts.checkpoints !== undefined ? readCheckpointsFile(opts.checkpoints) : undefined;
      const options = {
        dataDir: opts.data,
        ...(publicKey ? { publicKey } : {}),
        ...(outside ? { outsideCheckpoints: outside } : {}),
      };
      // the evidence log is the source of truth; the store (its index, and the legacy tables) when there is one
      const report =
        existsSync(evidenceDir(opts.data)) && !existsSync(join(opts.data, STORE_FILE))
          ? await verifyEvidence(undefined, options)
          : await withReadOnlyStore(opts.data, (store) => verifyEvidence(store, options));
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      if (report.ok) {
        if (!opts.json) {
          process.stdout.write(summary(report));
          if (publicKey) process.stdout.write(`pinned key: ${keyIdOf(publicKey)}\n`);
        }
        return;
      }
      const problems = report.problems;
      const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s); see --json)` : "";
      throw new CliError(`${problems[0] ?? "verification failed"}${more}`, 1);
    });

  audit
    .command("tail")
    .description("Print the latest audit records")
    .option("-d, --data <dir>", "data directory holding gatehouse.db (env GATEHOUSE_DATA)", DEFAULT_DATA_DIR)
    .option("-n, --lines <n>", "how many records", "20")
    .option("--json", "print records as JSON lines")
    .action(async (opts: { data: string; lines: string; json?: boolean }) => {
      const n = Number(opts.lines);
      if (!Number.isInteger(n) || n < 1) throw new CliError(`-n ${opts.lines}: expected a positive integer`, 2);
      const records = await withReadOnlyStore(opts.data, (store) => store.tailAudit(n));
      for (const r of records) process.stdout.write(`${opts.json ? JSON.stringify(r) : formatRecord(r)}\n`);
    });
}
