/**
 * What the HTTP and Kubernetes drivers share: the gateway's HTTP listener serves both connection types on one port,
 * with TLS from a certificate of the test's own (SAN 127.0.0.1) that their clients trust as their CA. TLS is
 * required of every client, so both drivers' clients speak HTTPS as they would to a remote gateway; kubectl sends
 * its bearer token over TLS only.
 */
import { selfSignedCert, type ServingCert } from "../../support/kube-apiserver/cert.js";

let cert: ServingCert | undefined;

/** The listener's certificate and key (made once). */
export function listenerCert(): ServingCert {
  cert ??= selfSignedCert();
  return cert;
}

/** The `http:` settings for the shared gateway config: the same text from both drivers, written once. */
export function listenerTopYaml(): string {
  const c = listenerCert();
  return `http:\n  tls: { cert: ${JSON.stringify(c.certPem)}, key: ${JSON.stringify(c.keyPem)}, require: always }`;
}

/** The listener's base URL. */
export const listenerUrl = (port: number): string => `https://127.0.0.1:${port}`;
