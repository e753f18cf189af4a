import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import ssh2 from "ssh2";
import { errorText, type CredentialOracle, type SshSignHash } from "../../core/adapter/index.js";
import type { SshConnectionConfig } from "../../core/policy/schema.js";

/** The target refused or could not be reached; `message` is safe to show the client (no secrets). */
export class TargetError extends Error {
  constructor(
    readonly code: "host_key_mismatch" | "auth_failed" | "unreachable",
    message: string,
  ) {
    super(message);
    this.name = "TargetError";
  }
}

export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

/** What `host_key` pins: a whole key line compares by blob, a fingerprint by SHA256. */
function hostKeyMatches(pinned: string, presented: Buffer): boolean {
  if (pinned.startsWith("SHA256:")) return pinned.replace(/=+$/, "") === fingerprint(presented);
  const b64 = pinned.trim().split(/\s+/)[1] ?? "";
  return Buffer.from(b64, "base64").equals(presented);
}

/**
 * ssh2's agent interface over a credential oracle (`secrets: agent`): the key pair stays with the agent that holds
 * it, which lists its public keys and signs the login's userauth request; ssh2 drives the rest of the login exactly
 * as with a key the gateway holds.
 */
export class OracleSshAgent extends ssh2.BaseAgent {
  constructor(private readonly oracle: CredentialOracle) {
    super();
  }

  getIdentities(cb: (err?: Error | null, keys?: Buffer[]) => void): void {
    this.oracle.sshIdentities().then(
      (keys) => cb(null, keys),
      (err: unknown) => cb(new Error(errorText(err))),
    );
  }

  sign(
    pubKey: string | Buffer | ssh2.ParsedKey,
    data: Buffer,
    options: ssh2.SigningRequestOptions | ((err?: Error | null, signature?: Buffer) => void),
    cb?: (err?: Error | null, signature?: Buffer) => void,
  ): void {
    const done = typeof options === "function" ? options : cb;
    const hash: SshSignHash | undefined = typeof options === "function" ? undefined : options.hash;
    const parsed = typeof pubKey === "object" && !Buffer.isBuffer(pubKey) ? pubKey : ssh2.utils.parseKey(pubKey);
    if (parsed instanceof Error) {
      done?.(parsed);
      return;
    }
    this.oracle.sshSign(parsed.getPublicSSH(), data, hash).then(
      (signature) => done?.(null, signature),
      (err: unknown) => done?.(new Error(errorText(err))),
    );
  }
}

/**
 * Logs in to the target over `sock` (a stream from the target connector) with the connection's credentials: the
 * key or password the gateway holds, or with `oracle` (`secrets: agent`) a key only the agent holds. The host key
 * is checked against the pin before any credential is used; there is no trust on first use.
 */
export function connectTarget(
  target: SshConnectionConfig["target"],
  user: string,
  sock: Duplex,
  oracle?: CredentialOracle,
  timeoutMs = 10_000,
): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let presented: Buffer | undefined;
    let settled = false;
    const fail = (err: TargetError) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(err);
    };
    client.once("ready", () => {
      settled = true;
      resolve(client);
    });
    client.on("error", (err: Error & { level?: string }) => {
      if (presented && !hostKeyMatches(target.host_key, presented)) {
        fail(
          new TargetError(
            "host_key_mismatch",
            `target ${target.host}:${target.port} presented host key ${fingerprint(presented)}, which does not match the pinned host_key; refusing to connect`,
          ),
        );
      } else if (err.level === "agent") {
        // the oracle refused or could not answer: its reason names no secret
        fail(
          new TargetError(
            "auth_failed",
            `target ${target.host}:${target.port}: no login as ${user} with the agent's key: ${err.message}`,
          ),
        );
      } else if (err.level === "client-authentication") {
        fail(
          new TargetError(
            "auth_failed",
            `target ${target.host}:${target.port} refused the ${oracle ? "agent's" : "gateway's"} credentials for ${user}`,
          ),
        );
      } else {
        fail(new TargetError("unreachable", `target ${target.host}:${target.port} unreachable: ${err.message}`));
      }
    });
    client.connect({
      sock,
      username: user,
      ...(oracle
        ? { agent: new OracleSshAgent(oracle) }
        : {
            ...(target.private_key !== undefined ? { privateKey: target.private_key } : {}),
            ...(target.password !== undefined ? { password: target.password } : {}),
          }),
      readyTimeout: timeoutMs,
      keepaliveInterval: 15_000,
      hostVerifier: (key: Buffer) => {
        presented = key;
        return hostKeyMatches(target.host_key, key);
      },
    });
  });
}
