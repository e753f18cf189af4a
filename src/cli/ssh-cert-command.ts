import { Option, type Command } from "commander";
import { readFileSync, writeFileSync } from "node:fs";
import { loadSshCa, signSshUserCert } from "../core/identity/index.js";
import { parseDuration } from "../core/policy/duration.js";
import { CliError } from "./cli-error.js";

/**
 * `gatehouse token ssh-cert`: signs a short-lived OpenSSH user certificate for a key with the gateway's SSH CA
 * (DATA/keys/ssh-user-ca.pem), so `ssh -i KEY` logs in to the SSH listener as that identity.
 */
export function registerSshCertCommand(token: Command): void {
  token
    .command("ssh-cert")
    .description("sign a short-lived SSH user certificate for KEY.pub with this gateway's SSH CA")
    .requiredOption("--data <dir>", "the gateway's data directory (holds keys/ssh-user-ca.pem)")
    .requiredOption("--subject <subject>", "who the certificate identifies")
    .requiredOption("--key <file>", "the public key to certify (ssh-ed25519)")
    .option("--groups <list>", "comma-separated groups", "")
    .addOption(new Option("--kind <kind>", "identity kind").choices(["bot", "human"]).default("bot"))
    .option("--ttl <duration>", "lifetime, at most 24h", "1h")
    .option("--out <file>", "where to write the certificate (default: KEY without .pub, plus -cert.pub)")
    .action(
      (opts: {
        data: string;
        subject: string;
        key: string;
        groups: string;
        kind: "bot" | "human";
        ttl: string;
        out?: string;
      }) => {
        const ttlMs = parseDuration(opts.ttl);
        if (typeof ttlMs !== "number") throw new CliError(`--ttl: ${ttlMs.error}`);
        let publicKey: string;
        try {
          publicKey = readFileSync(opts.key, "utf8");
        } catch (err) {
          throw new CliError(`--key: cannot read ${opts.key}: ${(err as Error).message}`);
        }
        const groups = opts.groups
          .split(",")
          .map((g) => g.trim())
          .filter(Boolean);
        let signed;
        try {
          signed = signSshUserCert(loadSshCa(opts.data), {
            publicKey,
            subject: opts.subject,
            groups,
            kind: opts.kind,
            ttlMs,
          });
        } catch (err) {
          throw new CliError(`cannot sign ${opts.key}: ${(err as Error).message}`);
        }
        const out = opts.out ?? `${opts.key.replace(/\.pub$/, "")}-cert.pub`;
        writeFileSync(out, `${signed.line}\n`);
        process.stdout.write(`${out} (valid until ${signed.validBefore.toISOString()})\n`);
      },
    );
}
