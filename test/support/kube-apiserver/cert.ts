/** A self-signed serving certificate made with the openssl CLI; clients trust it by taking it as their CA. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ServingCert {
  certPem: string;
  keyPem: string;
}

export function selfSignedCert(): ServingCert {
  const dir = mkdtempSync(join(tmpdir(), "gh-kube-cert-"));
  try {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync(
      "openssl",
      [
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"],
        ["-keyout", key, "-out", cert, "-subj", "/CN=localhost"],
        // Go (kubectl) checks the SAN, never the CN
        ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "extendedKeyUsage=serverAuth"],
      ].flat(),
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    return { certPem: readFileSync(cert, "utf8"), keyPem: readFileSync(key, "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
