import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * SCRAM-SHA-256 client (RFC 5802/7677) as PostgreSQL speaks it: no channel binding ("n,,"), the user name is
 * taken from the startup message so the SCRAM one is empty. The salted password is cached by
 * (password, salt, iterations) because PBKDF2 with 4096 rounds costs milliseconds per new target connection.
 */

const saltedCache = new Map<string, Promise<Buffer>>();
const SALTED_CACHE_MAX = 64;

function hmac(key: Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

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

export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScramError";
  }
}

export class ScramClient {
  readonly #nonce: string;
  readonly #clientFirstBare: string;
  #serverSignature: Buffer | undefined;

  /** `options` exist for the RFC 7677 test vector; PostgreSQL gets a random nonce and an empty SCRAM user. */
  constructor(
    private readonly password: string,
    options: { nonce?: string; user?: string } = {},
  ) {
    this.#nonce = options.nonce ?? randomBytes(18).toString("base64");
    this.#clientFirstBare = `n=${options.user ?? "*"},r=${this.#nonce}`;
  }

  /** client-first-message */
  first(): Buffer {
    return Buffer.from(`n,,${this.#clientFirstBare}`);
  }

  /** Answers server-first-message with client-final-message. */
  async final(serverFirst: string): Promise<Buffer> {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (!nonce || !nonce.startsWith(this.#nonce) || nonce.length === this.#nonce.length) {
      throw new ScramError("server nonce does not extend the client nonce");
    }
    if (!salt || !Number.isInteger(iterations) || iterations < 1)
      throw new ScramError("malformed server-first-message");
    const salted = await saltedPassword(this.password, Buffer.from(salt, "base64"), iterations);
    const clientKey = hmac(salted, "Client Key");
    const storedKey = createHash("sha256").update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] as number) ^ (signature[i] as number);
    this.#serverSignature = hmac(hmac(salted, "Server Key"), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString("base64")}`);
  }

  /** Checks server-final-message: the server proves it knew the verifier too. */
  verify(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal);
    const error = attrs.get("e");
    if (error) throw new ScramError(`server rejected authentication: ${error}`);
    const v = attrs.get("v");
    const expected = this.#serverSignature;
    const got = v ? Buffer.from(v, "base64") : Buffer.alloc(0);
    if (!expected || got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new ScramError("server signature mismatch");
    }
  }
}

function parseAttributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part.slice(0, 1), part.slice(2));
  }
  return out;
}
