import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import ssh2 from "ssh2";

/**
 * A new Ed25519 key pair in OpenSSH format that ssh2 can read back. ssh2 1.17's generateKeyPairSync("ed25519")
 * writes a private key that its own parseKey refuses ("Malformed OpenSSH private key") about once in 400 calls
 * (measured: 8 of 3,000), which made a gateway's first start fail at random; such a pair is generated again.
 */
export function generateEd25519KeyPair(): { private: string; public: string } {
  for (let attempt = 0; ; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519");
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) || attempt >= 20) return pair;
  }
}

/**
 * The listener's host key, generated on first start into DATA/keys/ssh-host-ed25519 (OpenSSH format, 0600) and
 * kept, so clients that pinned it keep trusting the gateway across restarts.
 */
export function loadOrCreateHostKey(dataDir: string): { private: string; public: string } {
  const path = join(dataDir, "keys", "ssh-host-ed25519");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    const pair = generateEd25519KeyPair();
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, pair.private, { mode: 0o600, flag: "wx" });
      writeFileSync(`${path}.pub`, `${pair.public}\n`, { mode: 0o644 });
    } catch (writeErr) {
      if ((writeErr as NodeJS.ErrnoException).code !== "EEXIST") throw writeErr;
    }
    text = readFileSync(path, "utf8");
  }
  const parsed = ssh2.utils.parseKey(text);
  if (parsed instanceof Error) throw new Error(`${path}: ${parsed.message}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key) throw new Error(`${path}: no key`);
  return { private: text, public: `${key.type} ${key.getPublicSSH().toString("base64")}` };
}
