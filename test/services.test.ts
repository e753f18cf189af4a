/**
 * Proves each real server works with its stock client, the way later e2e tests will use it as a gateway target.
 */
import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { services } from "./support/services.js";

const exec = promisify(execFile);
const svc = services();

async function psql(user: string, password: string, sql: string): Promise<string> {
  const { stdout } = await exec(
    "psql",
    [
      "-X",
      "-At",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      svc.GH_TEST_PG_HOST,
      "-p",
      svc.GH_TEST_PG_PORT,
      "-U",
      user,
      "-d",
      svc.GH_TEST_PG_DATABASE,
      "-c",
      sql,
    ],
    { env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" } },
  );
  return stdout.trim();
}

async function mariadb(user: string, password: string, sql: string): Promise<string> {
  // --no-defaults: ignore any ~/.my.cnf; the password goes through the environment, not argv.
  const { stdout } = await exec(
    "mariadb",
    [
      "--no-defaults",
      "-h",
      svc.GH_TEST_MY_HOST,
      "-P",
      svc.GH_TEST_MY_PORT,
      "-u",
      user,
      svc.GH_TEST_MY_DATABASE,
      "-N",
      "-s",
      "-e",
      sql,
    ],
    { env: { ...process.env, MYSQL_PWD: password } },
  );
  return stdout.trim();
}

async function ssh(key: string, command: string, extra: string[] = []): Promise<string> {
  const { stdout } = await exec("ssh", [
    "-p",
    svc.GH_TEST_SSH_PORT,
    "-i",
    key,
    ...extra,
    "-o",
    `UserKnownHostsFile=${svc.GH_TEST_SSH_KNOWN_HOSTS}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "ConnectTimeout=5",
    `${svc.GH_TEST_SSH_USER}@${svc.GH_TEST_SSH_HOST}`,
    command,
  ]);
  return stdout.trim();
}

/** Log lines are written asynchronously by the server: poll briefly for the marker. */
async function waitForLogLine(path: string, marker: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const line = (await readFile(path, "utf8")).split("\n").find((l) => l.includes(marker));
    if (line) return line;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${marker} never appeared in ${path}`);
}

/** curl as the stock HTTP client (-sS: no progress, errors still shown; --fail: an HTTP error fails). */
async function curl(...args: string[]): Promise<string> {
  const { stdout } = await exec("curl", ["-sS", "--fail", "--max-time", "5", ...args], { encoding: "utf8" });
  return stdout;
}

const http = `http://${svc.GH_TEST_HTTP_HOST}:${svc.GH_TEST_HTTP_PORT}`;

/** One access-log line of nginx (log_format gh in test/services.sh). */
interface AccessLine {
  method: string;
  uri: string;
  status: number;
  authorization: string;
}

describe("real test servers", () => {
  it("PostgreSQL 15 accepts SCRAM-SHA-256 and md5 logins", async () => {
    expect(await psql(svc.GH_TEST_PG_SCRAM_USER, svc.GH_TEST_PG_SCRAM_PASSWORD, "select current_user")).toBe(
      "scramuser",
    );
    expect(await psql(svc.GH_TEST_PG_MD5_USER, svc.GH_TEST_PG_MD5_PASSWORD, "select current_user")).toBe("md5user");
    expect(await psql(svc.GH_TEST_PG_SCRAM_USER, svc.GH_TEST_PG_SCRAM_PASSWORD, "show server_version_num")).toMatch(
      /^15\d{4}$/,
    );
    await expect(psql(svc.GH_TEST_PG_SCRAM_USER, "wrong", "select 1")).rejects.toThrow(/password authentication/);
  });

  it("PostgreSQL logs every statement it runs", async () => {
    const marker = `marker-${randomUUID()}`;
    await psql(svc.GH_TEST_PG_SCRAM_USER, svc.GH_TEST_PG_SCRAM_PASSWORD, `select '${marker}'`);
    const line = await waitForLogLine(svc.GH_TEST_PG_LOG, marker);
    expect(line).toContain(`scramuser@appdb LOG:  statement: select '${marker}'`);
  });

  it("MariaDB accepts mysql_native_password and ed25519 logins and logs statements", async () => {
    expect(await mariadb(svc.GH_TEST_MY_NATIVE_USER, svc.GH_TEST_MY_NATIVE_PASSWORD, "select current_user()")).toBe(
      "nativeuser@127.0.0.1",
    );
    const marker = `marker-${randomUUID()}`;
    expect(await mariadb(svc.GH_TEST_MY_ED_USER, svc.GH_TEST_MY_ED_PASSWORD, `select '${marker}'`)).toBe(marker);
    expect(await waitForLogLine(svc.GH_TEST_MY_LOG, marker)).toContain(`select '${marker}'`);
  });

  it("OpenSSH runs a command for the client key, checks the host key, and accepts a user certificate", async () => {
    expect(await ssh(svc.GH_TEST_SSH_CLIENT_KEY, "echo ssh-ok $(whoami)")).toBe("ssh-ok sshtest");
    expect(await ssh(svc.GH_TEST_SSH_CERT_KEY, "whoami", ["-o", `CertificateFile=${svc.GH_TEST_SSH_CERT}`])).toBe(
      "sshtest",
    );
    // The certificate key alone is not in authorized_keys: without its certificate it must be refused.
    await expect(ssh(svc.GH_TEST_SSH_CERT_KEY, "true", ["-o", "CertificateFile=/dev/null"])).rejects.toThrow(
      /Permission denied/,
    );
  });

  it("nginx answers with method and URI, serves /json and /big, and logs each request with its Authorization", async () => {
    const marker = `/marker-${randomUUID()}`;
    expect(await curl("-X", "PUT", "-H", "Authorization: Bearer held-by-target", `${http}${marker}?a=1`)).toBe(
      `ok PUT ${marker}?a=1\n`,
    );
    const line = JSON.parse(await waitForLogLine(svc.GH_TEST_HTTP_ACCESS_LOG, marker)) as AccessLine;
    expect(line).toMatchObject({ method: "PUT", uri: `${marker}?a=1`, status: 200 });
    expect(line.authorization).toBe("Bearer held-by-target");

    const doc = JSON.parse(await curl(`${http}/json`)) as { ok?: boolean };
    expect(doc.ok).toBe(true);

    const big = Buffer.from(await (await fetch(`${http}/big`)).arrayBuffer());
    expect(big.length).toBe(1024 * 1024);
    const onDisk = await readFile(join(svc.GH_TEST_HTTP_ROOT, "big.bin"));
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    expect(sha(big)).toBe(sha(onDisk));

    // /bench is the benchmarks' answer and is not logged
    expect(await curl(`${http}/bench`)).toBe("gatehouse bench target\n");
  });
});
