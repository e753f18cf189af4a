/** The real `ssh` client against a test endpoint. No vitest imports, so bench/ can use it too. */
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

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

/** Options that make `ssh` log in with a bearer token as its password, read from SSH_ASKPASS (see `tokenLoginEnv`). */
export const TOKEN_LOGIN_ARGS = [
  "-o",
  "PreferredAuthentications=password",
  "-o",
  "PubkeyAuthentication=no",
  "-o",
  "NumberOfPasswordPrompts=1",
];

/**
 * The environment for TOKEN_LOGIN_ARGS: an askpass script in `dir` that prints GH_SSH_TOKEN, which ssh runs for
 * its password prompt (forced, without a terminal).
 */
export function tokenLoginEnv(dir: string, token: string): NodeJS.ProcessEnv {
  const askpass = join(dir, "askpass.sh");
  if (!existsSync(askpass)) {
    writeFileSync(askpass, '#!/bin/sh\nprintf "%s\\n" "$GH_SSH_TOKEN"\n');
    chmodSync(askpass, 0o700);
  }
  return { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0", GH_SSH_TOKEN: token };
}
