/**
 * A PostgreSQL 15 of its own for the target-TLS tests: `ssl=on` with a certificate from a CA made for it, and one
 * login (`tlsuser`) that pg_hba allows only over TLS (`hostssl`). It is separate from the shared test server so
 * that server's plain logins, and the tests that rely on it having ssl=off, are untouched. Runs as the postgres
 * system user (PostgreSQL refuses root), as test/services.sh does.
 */
import { execFile } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../support/gateway-config.js";

const run = promisify(execFile);
const PG_BIN = "/usr/lib/postgresql/15/bin";
const AS_POSTGRES = ["--reuid=postgres", "--regid=postgres", "--clear-groups", "--"];
const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export interface TlsPostgres {
  port: number;
  user: string;
  password: string;
  /** PEM of the CA that signed the server certificate. */
  ca: string;
  /** PEM of a CA that signed nothing the server has. */
  otherCa: string;
  /** The names in the server certificate: IP 127.0.0.1 and this DNS name (`localhost` is not one). */
  dnsName: string;
  stop(): Promise<void>;
}

const asPostgres = (cmd: string, args: string[]) => run("setpriv", [...AS_POSTGRES, cmd, ...args]);

export async function startTlsPostgres(): Promise<TlsPostgres> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-pgtls-"));
  chmodSync(dir, 0o755);
  const at = (f: string) => join(dir, f);
  const dnsName = "pg.gatehouse.test";
  try {
    for (const ca of ["ca", "other-ca"]) {
      await run(
        "openssl",
        ["req", "-x509", ...EC, "-days", "2", "-subj", `/CN=gatehouse test ${ca}`].concat([
          "-keyout",
          at(`${ca}.key`),
          "-out",
          at(`${ca}.crt`),
        ]),
      );
    }
    await run(
      "openssl",
      ["req", ...EC, "-subj", "/CN=gatehouse test target", "-keyout", at("server.key")].concat([
        "-out",
        at("server.csr"),
      ]),
    );
    writeFileSync(at("san.ext"), `subjectAltName=IP:127.0.0.1,DNS:${dnsName}\n`);
    await run(
      "openssl",
      ["x509", "-req", "-in", at("server.csr"), "-CA", at("ca.crt"), "-CAkey", at("ca.key")].concat([
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        at("san.ext"),
        "-out",
        at("server.crt"),
      ]),
    );
    const data = at("data");
    const sock = at("sock");
    const logs = at("log");
    for (const d of [data, sock, logs]) mkdirSync(d);
    for (const p of [data, sock, logs, at("server.key"), at("server.crt")]) chownSync(p, pgUid(), pgGid());
    chmodSync(at("server.key"), 0o600);
    await asPostgres(
      join(PG_BIN, "initdb"),
      ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8"].concat(["--locale=C.UTF-8", "--no-sync"]),
    );
    writeFileSync(
      join(data, "pg_hba.conf"),
      ["local all all trust", "hostssl all tlsuser 127.0.0.1/32 scram-sha-256", ""].join("\n"),
    );
    const port = await freePort();
    const settings = [
      `-p ${port}`,
      `-k ${sock}`,
      "-c listen_addresses=127.0.0.1",
      "-c ssl=on",
      `-c ssl_cert_file=${at("server.crt")}`,
      `-c ssl_key_file=${at("server.key")}`,
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      "-c max_connections=20",
      "-c shared_buffers=16MB",
    ].join(" ");
    await asPostgres(join(PG_BIN, "pg_ctl"), [
      "-D",
      data,
      "-l",
      join(logs, "postgres.log"),
      "-w",
      "-s",
      "-o",
      settings,
      "start",
    ]);
    const password = "tlspw";
    await run(
      join(PG_BIN, "psql"),
      ["-qX", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", String(port), "-U", "postgres"].concat([
        "-d",
        "postgres",
        "-c",
        `CREATE ROLE tlsuser LOGIN PASSWORD '${password}'`,
      ]),
    );
    return {
      port,
      user: "tlsuser",
      password,
      ca: readFileSync(at("ca.crt"), "utf8"),
      otherCa: readFileSync(at("other-ca.crt"), "utf8"),
      dnsName,
      stop: async () => {
        await asPostgres(join(PG_BIN, "pg_ctl"), ["-D", data, "-s", "-m", "immediate", "-w", "stop"]).catch(
          () => undefined,
        );
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await asPostgres(join(PG_BIN, "pg_ctl"), ["-D", at("data"), "-s", "-m", "immediate", "-w", "stop"]).catch(
      () => undefined,
    );
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function pgUid(): number {
  return Number(readFileSync("/etc/passwd", "utf8").match(/^postgres:[^:]*:(\d+):/m)?.[1] ?? NaN);
}

function pgGid(): number {
  return Number(readFileSync("/etc/passwd", "utf8").match(/^postgres:[^:]*:\d+:(\d+):/m)?.[1] ?? NaN);
}
