import { createHash, createHmac, pbkdf2 } from "node:crypto";
import type { CredentialOracle, ScramSignatures } from "../../core/adapter/index.js";

/**
 * What the target login needs of the connection's password: the steps of each password method that use it. The
 * login (target.ts, scram.ts) is one piece of code whoever holds the password: the gateway (`heldPassword`,
 * `secrets: gateway`) or an agent (`agentPassword`, its credential oracle, `secrets: agent`).
 */
export interface PasswordSecret {
  /** The password itself, for a target that asks for it in clear; undefined when the gateway does not hold it. */
  readonly cleartext: string | undefined;
  md5(user: string, salt: Buffer): Promise<string>;
  scram(salt: Buffer, iterations: number, authMessage: string): Promise<ScramSignatures>;
}

/** The gateway holds the password (the connection's `target.password`). */
export function heldPassword(password: string): PasswordSecret {
  return {
    cleartext: password,
    md5: (user, salt) => Promise.resolve(md5Response(user, password, salt)),
    scram: (salt, iterations, authMessage) => scramSignatures(password, salt, iterations, authMessage),
  };
}

/** Only an agent holds the password: each step is asked of its oracle; a cleartext request cannot be answered. */
export function agentPassword(oracle: CredentialOracle): PasswordSecret {
  return {
    cleartext: undefined,
    md5: (user, salt) => oracle.pgMd5(user, salt),
    scram: (salt, iterations, authMessage) => oracle.pgScram(salt, iterations, authMessage),
  };
}

/** The md5 method's PasswordMessage text: "md5" + md5(md5(password + user) + salt). */
export function md5Response(user: string, password: string, salt: Buffer): string {
  const inner = createHash("md5")
    .update(password + user)
    .digest("hex");
  return "md5" + createHash("md5").update(inner).update(salt).digest("hex");
}

const saltedCache = new Map<string, Promise<Buffer>>();
const SALTED_CACHE_MAX = 64;

function hmac(key: Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/**
 * The salted password, cached by (password, salt, iterations) because PBKDF2 with 4096 rounds costs milliseconds
 * per new target connection. The cache key is a hash: the password is never a map key.
 */
function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  const key = createHash("sha256")
    .update(`${password}\0${salt.toString("base64")}\0${iterations}`)
    .digest("hex");
  let cached = saltedCache.get(key);
  if (!cached) {
    cached = new Promise<Buffer>((resolve, reject) =>
      // SASLprep approximated by NFKC (identical for ASCII passwords, which is what gateway-held secrets are)
      pbkdf2(password.normalize("NFKC"), salt, iterations, 32, "sha256", (err, out) =>
        err ? reject(err) : resolve(out),
      ),
    );
    if (saltedCache.size >= SALTED_CACHE_MAX) saltedCache.delete(saltedCache.keys().next().value as string);
    saltedCache.set(key, cached);
    cached.catch(() => saltedCache.delete(key));
  }
  return cached;
}

/** SCRAM-SHA-256's password-dependent step (RFC 5802 section 3): ClientProof and ServerSignature for AuthMessage. */
export async function scramSignatures(
  password: string,
  salt: Buffer,
  iterations: number,
  authMessage: string,
): Promise<ScramSignatures> {
  const salted = await saltedPassword(password, salt, iterations);
  const clientKey = hmac(salted, "Client Key");
  const storedKey = createHash("sha256").update(clientKey).digest();
  const signature = hmac(storedKey, authMessage);
  const proof = Buffer.alloc(clientKey.length);
  for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] as number) ^ (signature[i] as number);
  return { proof, serverSignature: hmac(hmac(salted, "Server Key"), authMessage) };
}
