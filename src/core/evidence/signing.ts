import { createHash, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import type { Ed25519KeyPair } from "../keys.js";
import { canonicalJson } from "./canonical.js";

/** The public half of an evidence signing key, as stored beside the evidence so verify needs only the data dir. */
export interface SigningKeyRecord {
  key_id: string;
  algorithm: "ed25519";
  /** SPKI PEM. */
  public_key: string;
  created_at: string;
}

/** A signing key ready to use: private key, public key and its id. */
export interface EvidenceSigner {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

function rawEd25519(publicKey: KeyObject): Buffer {
  if (publicKey.asymmetricKeyType !== "ed25519") throw new Error("evidence signing key must be Ed25519");
  const jwk = publicKey.export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new Error("Ed25519 public key without x");
  return Buffer.from(jwk.x, "base64url");
}

/** Key id: first 16 hex digits of SHA-256 over the raw 32-byte Ed25519 public key. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash("sha256").update(rawEd25519(publicKey)).digest("hex").slice(0, 16);
}

export function toSigner(key: Ed25519KeyPair | EvidenceSigner): EvidenceSigner {
  if ("keyId" in key) return key;
  return { privateKey: key.privateKey, publicKey: key.publicKey, keyId: keyIdOf(key.publicKey) };
}

export function signingKeyRecord(signer: EvidenceSigner, createdAt: string): SigningKeyRecord {
  return {
    key_id: signer.keyId,
    algorithm: "ed25519",
    public_key: signer.publicKey.export({ type: "spki", format: "pem" }).toString(),
    created_at: createdAt,
  };
}

/** Ed25519 signature (base64) over the canonical JSON of `payload`. */
export function signCanonical(signer: EvidenceSigner, payload: unknown): string {
  return sign(null, Buffer.from(canonicalJson(payload), "utf8"), signer.privateKey).toString("base64");
}

export function verifyCanonical(publicKey: KeyObject, payload: unknown, signature: string): boolean {
  try {
    return verify(null, Buffer.from(canonicalJson(payload), "utf8"), publicKey, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

/** Reads a public key from PEM text: SPKI public key, or a private key whose public half is taken. */
export function publicKeyFromPem(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error("not an Ed25519 key");
  return key;
}
