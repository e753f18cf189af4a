import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import { isLoopbackHost } from "../policy/schema.js";

export interface TlsMaterial {
  cert: string;
  key: string;
  /** Where the material came from, for the startup log. */
  source: "config" | "generated" | "data dir";
}

/**
 * The certificate a listener presents (`listener` names it: "postgres", "http"). Configured PEM wins; otherwise a
 * self-signed ECDSA P-256 certificate is generated once into DATA/keys/LISTENER-tls.{crt,key} with the system
 * `openssl` binary (no native npm dependency, and the key never leaves the data directory). Clients that only ask
 * for encryption (sslmode=require) accept it; clients that verify need it as their CA, or a real certificate.
 */
export function loadTlsMaterial(
  dataDir: string,
  listener: string,
  configured?: { cert?: string | undefined; key?: string | undefined },
): TlsMaterial {
  if (configured?.cert && configured.key) return { cert: configured.cert, key: configured.key, source: "config" };
  const dir = join(dataDir, "keys");
  const certPath = join(dir, `${listener}-tls.crt`);
  const keyPath = join(dir, `${listener}-tls.key`);
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8"), source: "data dir" };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // generate under temporary names and rename, so a crash never leaves a key without its certificate
  const tmpKey = `${keyPath}.${process.pid}.tmp`;
  const tmpCert = `${certPath}.${process.pid}.tmp`;
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        `/CN=gatehouse ${hostname()}`,
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
        "-keyout",
        tmpKey,
        "-out",
        tmpCert,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    chmodSync(tmpKey, 0o600);
    renameSync(tmpKey, keyPath);
    renameSync(tmpCert, certPath);
  } catch (err) {
    rmSync(tmpKey, { force: true });
    rmSync(tmpCert, { force: true });
    throw new Error(
      `could not generate the ${listener} listener's TLS certificate with openssl (configure ${listener}.tls.cert/key): ${
        err instanceof Error ? err.message : String(err)
      }`,
    );
  }
  return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8"), source: "generated" };
}

export function secureContextFor(material: TlsMaterial): SecureContext {
  return createSecureContext({ cert: material.cert, key: material.key, minVersion: "TLSv1.2" });
}

/**
 * Whether a client at `remote` must use TLS under a listener's `tls.require`: `remote` asks it of every client that
 * is not on loopback (an IPv4-mapped IPv6 loopback address counts as loopback).
 */
export function clientMustUseTls(require: "remote" | "always" | "never", remote: string | undefined): boolean {
  if (require !== "remote") return require === "always";
  return !(remote !== undefined && isLoopbackHost(remote.replace(/^::ffff:/, "")));
}
