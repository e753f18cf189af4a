import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export interface Ed25519KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/**
 * Loads an Ed25519 private key (PKCS#8 PEM) from `path`, creating it with mode 0600 on first use.
 * Each purpose (audit checkpoints, gateway-minted tokens, SSH host key...) gets its own file.
 */
export function loadOrCreateEd25519Key(path: string): Ed25519KeyPair {
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    const { privateKey } = generateKeyPairSync("ed25519");
    pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // 'wx' so two processes starting at once cannot overwrite each other's fresh key
    try {
      writeFileSync(path, pem, { mode: 0o600, flag: "wx" });
    } catch (writeErr) {
      if ((writeErr as NodeJS.ErrnoException).code !== "EEXIST") throw writeErr;
      pem = readFileSync(path, "utf8");
    }
  }
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== "ed25519") throw new Error(`${path}: not an Ed25519 private key`);
  return { privateKey, publicKey: createPublicKey(privateKey) };
}
