import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import ssh2 from "ssh2";
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
 * Logs in to the target over `sock` (a stream from the target connector) with the gateway's credentials. The host
 * key is checked against the pin before any credential is sent; there is no trust on first use.
 */
export function connectTarget(
  target: SshConnectionConfig["target"],
  user: string,
  sock: Duplex,
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
      } else if (err.level === "client-authentication") {
        fail(
          new TargetError(
            "auth_failed",
            `target ${target.host}:${target.port} refused the gateway's credentials for ${user}`,
          ),
        );
      } else {
        fail(new TargetError("unreachable", `target ${target.host}:${target.port} unreachable: ${err.message}`));
      }
    });
    client.connect({
      sock,
      username: user,
      ...(target.private_key !== undefined ? { privateKey: target.private_key } : {}),
      ...(target.password !== undefined ? { password: target.password } : {}),
      readyTimeout: timeoutMs,
      keepaliveInterval: 15_000,
      hostVerifier: (key: Buffer) => {
        presented = key;
        return hostKeyMatches(target.host_key, key);
      },
    });
  });
}
