import { verify as verifySignature, type KeyObject } from "node:crypto";
import ssh2 from "ssh2";
import { isAuthError, SSH_CERT_ALGO, verifySshUserCert, type Identity } from "../../core/identity/index.js";
import type { IdentityVerifier } from "../../core/identity/verifier.js";
import type { SshKeyConfig } from "../../core/policy/schema.js";

/** The outcome of one login attempt; `check` means "this key would do, now prove you hold it" (no signature yet). */
export type AuthResult =
  | { ok: true; identity: Identity; method: "password" | "publickey" | "certificate" }
  | { ok: "check" }
  | { ok: false; code: string; message: string };

interface RegisteredKey {
  config: SshKeyConfig;
  key: ssh2.ParsedKey;
}

/**
 * Who may log in to the SSH listener: a bearer token as the password (any identity the verifier accepts), a public
 * key registered under identity.ssh_keys, or a certificate signed by the gateway's SSH CA.
 */
export class SshAuthenticator {
  readonly #keys = new Map<string, RegisteredKey>();

  constructor(
    private readonly verifier: IdentityVerifier,
    keys: readonly SshKeyConfig[],
    private readonly caPublic: KeyObject,
  ) {
    for (const config of keys) {
      const parsed = ssh2.utils.parseKey(config.key);
      const key = Array.isArray(parsed) ? parsed[0] : parsed;
      if (!key || key instanceof Error) throw new Error(`identity.ssh_keys ${config.name}: cannot parse the key`);
      this.#keys.set(key.getPublicSSH().toString("base64"), { config, key });
    }
  }

  async password(password: string): Promise<AuthResult> {
    try {
      return { ok: true, identity: await this.verifier.verify(password), method: "password" };
    } catch (err) {
      if (isAuthError(err)) return { ok: false, code: err.code, message: err.message };
      throw err;
    }
  }

  publicKey(ctx: {
    key: { algo: string; data: Buffer };
    signature?: Buffer;
    blob?: Buffer;
    hashAlgo?: string;
  }): AuthResult {
    if (ctx.key.algo === SSH_CERT_ALGO) {
      let cert;
      try {
        cert = verifySshUserCert(this.caPublic, ctx.key.data);
      } catch (err) {
        return { ok: false, code: "bad_certificate", message: (err as Error).message };
      }
      if (!ctx.signature || !ctx.blob) return { ok: "check" };
      return verifySignature(null, ctx.blob, cert.key, rawEd25519Signature(ctx.signature))
        ? { ok: true, identity: cert.identity, method: "certificate" }
        : { ok: false, code: "bad_signature", message: "signature does not verify with the certified key" };
    }
    const registered = this.#keys.get(ctx.key.data.toString("base64"));
    if (!registered) return { ok: false, code: "unknown_key", message: "public key is not registered to an identity" };
    if (!ctx.signature || !ctx.blob) return { ok: "check" };
    if (registered.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true)
      return { ok: false, code: "bad_signature", message: "signature does not verify" };
    const c = registered.config;
    return {
      ok: true,
      method: "publickey",
      identity: {
        subject: c.name,
        kind: c.kind,
        groups: c.groups,
        issuer: "gatehouse",
        tokenId: `ssh-key:${c.name}`,
      },
    };
  }
}

/**
 * ssh2 strips the `string algo, string sig` wrapper only when the algo equals the key's algorithm, which a
 * certificate's (`ssh-ed25519-cert-v01@openssh.com` signed as `ssh-ed25519`) never does: unwrap it here.
 */
function rawEd25519Signature(sig: Buffer): Buffer {
  if (sig.length === 64) return sig;
  const algoLen = sig.length >= 4 ? sig.readUInt32BE(0) : 0;
  if (algoLen > 0 && sig.subarray(4, 4 + algoLen).toString() === "ssh-ed25519" && sig.length >= 8 + algoLen) {
    const n = sig.readUInt32BE(4 + algoLen);
    return sig.subarray(8 + algoLen, 8 + algoLen + n);
  }
  return sig;
}

/** `CONN` or `targetuser%CONN`. */
export function parseLoginUser(username: string): { connection: string; targetUser?: string } {
  const at = username.lastIndexOf("%");
  if (at <= 0) return { connection: username };
  return { connection: username.slice(at + 1), targetUser: username.slice(0, at) };
}
