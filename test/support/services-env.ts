/**
 * The connection facts that `test/services.sh env` prints. Kept free of vitest imports so that the global setup
 * (which runs outside any test) can use it too.
 */
export const SERVICE_KEYS = [
  "GH_TEST_SERVICES_DIR",
  "GH_TEST_PG_HOST",
  "GH_TEST_PG_PORT",
  "GH_TEST_PG_SOCKET_DIR",
  "GH_TEST_PG_DATABASE",
  "GH_TEST_PG_SUPERUSER",
  "GH_TEST_PG_SCRAM_USER",
  "GH_TEST_PG_SCRAM_PASSWORD",
  "GH_TEST_PG_MD5_USER",
  "GH_TEST_PG_MD5_PASSWORD",
  "GH_TEST_PG_TRUST_USER",
  "GH_TEST_PG_LOG",
  "GH_TEST_MY_HOST",
  "GH_TEST_MY_PORT",
  "GH_TEST_MY_SOCKET",
  "GH_TEST_MY_DATABASE",
  "GH_TEST_MY_NATIVE_USER",
  "GH_TEST_MY_NATIVE_PASSWORD",
  "GH_TEST_MY_ED_USER",
  "GH_TEST_MY_ED_PASSWORD",
  "GH_TEST_MY_LOG",
  "GH_TEST_SSH_HOST",
  "GH_TEST_SSH_PORT",
  "GH_TEST_SSH_USER",
  "GH_TEST_SSH_PASSWORD",
  "GH_TEST_SSH_CLIENT_KEY",
  "GH_TEST_SSH_CLIENT_PUBKEY",
  "GH_TEST_SSH_CERT_KEY",
  "GH_TEST_SSH_CERT",
  "GH_TEST_SSH_USER_CA",
  "GH_TEST_SSH_USER_CA_PUB",
  "GH_TEST_SSH_HOST_KEY_PUB",
  "GH_TEST_SSH_KNOWN_HOSTS",
  "GH_TEST_SSH_LOG",
  "GH_TEST_HTTP_HOST",
  "GH_TEST_HTTP_PORT",
  "GH_TEST_HTTP_ROOT",
  "GH_TEST_HTTP_ACCESS_LOG",
  "GH_TEST_HTTP_ERROR_LOG",
] as const;

export type ServiceKey = (typeof SERVICE_KEYS)[number];
export type ServicesEnv = Record<ServiceKey, string>;

/** Parses KEY=VALUE lines and insists on every known key, so a renamed fact fails loudly at setup. */
export function parseServicesEnv(text: string): ServicesEnv {
  const found = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) found.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const missing = SERVICE_KEYS.filter((k) => !found.has(k));
  if (missing.length > 0) throw new Error(`test/services.sh env did not print: ${missing.join(", ")}`);
  return Object.fromEntries(SERVICE_KEYS.map((k) => [k, found.get(k) ?? ""])) as ServicesEnv;
}
