import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { verifyEvidence, type VerifyReport } from "../core/evidence/verify.js";
import { keyIdOf, publicKeyFromPem } from "../core/evidence/signing.js";
import type { AuditRecord } from "../core/evidence/audit-event.js";
import { CliError } from "./cli-error.js";
import { DEFAULT_DATA_DIR, withReadOnlyStore } from "./read-store.js";

function readPinnedKey(path: string) {
  try {
    return publicKeyFromPem(readFileSync(path, "utf8"));
  } catch (err) {
    throw new CliError(`--public-key ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function summary(r: VerifyReport): string {
  const lines = [
    r.records === 0
      ? "audit log: empty"
      : `audit log: ${r.records} records verified (seq ${r.first_seq}..${r.last_seq}), last hash ${r.last_hash}`,
    `checkpoints: ${r.checkpoints} signatures verified` +
      (r.last_checkpoint_seq !== undefined ? `, last at seq ${r.last_checkpoint_seq}` : "") +
      `, ${r.unsigned_tail} record(s) after it not yet signed` +
      (r.key_ids.length ? ` (keys ${r.key_ids.join(", ")})` : ""),
    `sessions: ${r.sessions.verified} verified (${r.sessions.sealed} sealed, ${r.sessions.unsealed} unsealed)`,
    ...r.warnings.map((w) => `warning: ${w}`),
  ];
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
    .description("Recompute the audit hash chain, checkpoint signatures and session seals; exit 1 on any break")
    .option("-d, --data <dir>", "data directory holding gatehouse.db (env GATEHOUSE_DATA)", DEFAULT_DATA_DIR)
    .option("--public-key <file>", "trust only this Ed25519 public key (PEM) instead of the keys in the store")
    .option("--json", "print the full report as JSON")
    .action(async (opts: { data: string; publicKey?: string; json?: boolean }) => {
      const publicKey = opts.publicKey !== undefined ? readPinnedKey(opts.publicKey) : undefined;
      const report = await withReadOnlyStore(opts.data, (store) =>
        verifyEvidence(store, publicKey ? { publicKey } : {}),
      );
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      if (report.ok) {
        if (!opts.json) {
          process.stdout.write(summary(report));
          if (publicKey) process.stdout.write(`pinned key: ${keyIdOf(publicKey)}\n`);
        }
        return;
      }
      const problems = [
        ...(report.audit_error ? [report.audit_error.message] : []),
        ...report.bad_sessions.map((s) => s.message),
      ];
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
