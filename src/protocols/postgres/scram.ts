import { randomBytes, timingSafeEqual } from "node:crypto";
import { heldPassword, type PasswordSecret } from "./password.js";

/**
 * SCRAM-SHA-256 client (RFC 5802/7677) as PostgreSQL speaks it: no channel binding ("n,,"), the user name is
 * taken from the startup message so the SCRAM one is empty. The messages are built here whoever holds the
 * password; only the proof and the expected server signature come from the `PasswordSecret` (password.ts), so an
 * agent holding the password (`secrets: agent`) computes those and nothing else.
 */

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
  readonly #secret: Pick<PasswordSecret, "scram">;

  /**
   * `secret` is the password (held by the gateway) or what computes its step. `options` exist for the RFC 7677
   * test vector; PostgreSQL gets a random nonce and an empty SCRAM user.
   */
  constructor(secret: string | Pick<PasswordSecret, "scram">, options: { nonce?: string; user?: string } = {}) {
    this.#secret = typeof secret === "string" ? heldPassword(secret) : secret;
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
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const { proof, serverSignature } = await this.#secret.scram(Buffer.from(salt, "base64"), iterations, authMessage);
    this.#serverSignature = serverSignature;
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
