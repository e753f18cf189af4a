import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { IdentityConfigError, type StaticTokenConfig } from "./config.js";
import { AuthError } from "./errors.js";
import type { Identity } from "./identity.js";

/** Prefix of tokens minted by `gatehouse token new`, so secret scanners can recognise leaked ones. */
export const STATIC_TOKEN_PREFIX = "gth_";

/** A new random static token: `gth_` + 32 random bytes as base64url (43 characters). */
export function generateStaticToken(): { token: string; sha256: string } {
  const token = STATIC_TOKEN_PREFIX + randomBytes(32).toString("base64url");
  return { token, sha256: sha256Hex(token) };
}

export function sha256Hex(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex");
}

interface Entry {
  config: StaticTokenConfig;
  hash: Buffer;
  expiresAt?: Date;
}

/** Byte comparison used for token hashes; injectable only so tests can observe how it is called. */
export type HashEquals = (a: Buffer, b: Buffer) => boolean;

/**
 * Static bearer tokens, stored as SHA-256 hashes. Hashing first means the comparison runs on fixed-length digests
 * the client cannot steer byte by byte, and every configured hash is compared, so how long a lookup takes says
 * nothing about which entry (or which prefix) matched.
 */
export class StaticTokenStore {
  private readonly entries: Entry[];

  constructor(
    configs: readonly StaticTokenConfig[],
    private readonly equals: HashEquals = timingSafeEqual,
  ) {
    const seen = new Set<string>();
    this.entries = configs.map((config, i) => {
      const where = `identity.tokens[${i}] (${config.name})`;
      if (!/^[0-9a-f]{64}$/.test(config.sha256)) {
        throw new IdentityConfigError(`${where}: sha256 must be 64 lowercase hex characters`);
      }
      if (seen.has(config.sha256)) throw new IdentityConfigError(`${where}: the same token hash is listed twice`);
      seen.add(config.sha256);
      let expiresAt: Date | undefined;
      if (config.expires !== undefined) {
        expiresAt = new Date(config.expires);
        if (Number.isNaN(expiresAt.getTime())) throw new IdentityConfigError(`${where}: expires is not a valid date`);
      }
      return { config, hash: Buffer.from(config.sha256, "hex"), expiresAt };
    });
  }

  get size(): number {
    return this.entries.length;
  }

  /** The matching entry's identity, `undefined` when no entry matches; throws `expired` for a matching old one. */
  lookup(token: string, now: Date): Identity | undefined {
    const digest = createHash("sha256").update(token, "utf8").digest();
    let found: Entry | undefined;
    for (const entry of this.entries) {
      // no early exit: the loop always runs over every entry
      if (this.equals(digest, entry.hash) && !found) found = entry;
    }
    if (!found) return undefined;
    if (found.expiresAt && now.getTime() >= found.expiresAt.getTime()) {
      throw new AuthError("expired", "token expired");
    }
    return {
      subject: found.config.name,
      kind: found.config.kind,
      groups: [...found.config.groups],
      issuer: "gatehouse",
      tokenId: found.config.name,
      ...(found.expiresAt ? { expiresAt: found.expiresAt } : {}),
    };
  }
}
