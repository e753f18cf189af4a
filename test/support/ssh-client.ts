/** The real `ssh` client against a test endpoint. No vitest imports, so bench/ can use it too. */

/**
 * Options every test run of `ssh` needs: no user config, host keys neither checked nor remembered (the gateway's
 * and the test server's are throwaway), only errors on stderr, and only the identities the caller names.
 */
export function sshClientArgs(port: number | string): string[] {
  return [
    "-F",
    "/dev/null",
    "-p",
    String(port),
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "IdentitiesOnly=yes",
  ];
}
