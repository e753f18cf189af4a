/**
 * TLS from the gateway to a PostgreSQL target that requires it (`hostssl`), with certificate verification:
 * `tls: { mode: verify-full, ca }` connects, a wrong CA and a name the certificate does not carry are refused
 * with a clear error, and a plain login where pg_hba wants TLS fails with the target's reason.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgConnectionYaml, type PgTarget } from "../../support/gateway-config.js";
import { startHarness, type Harness } from "./harness.js";
import { startTlsPostgres, type TlsPostgres } from "./tls-target.js";

let server: TlsPostgres | undefined;
let h: Harness | undefined;

beforeAll(async () => {
  server = await startTlsPostgres();
  const s = server;
  const target = (host: string, tls?: { mode: string; ca?: string }): PgTarget =>
    ({ host, port: s.port, database: "postgres", user: s.user, password: s.password, tls }) as PgTarget;
  const conn = (name: string, t: PgTarget) => pgConnectionYaml(t, { name, group: "ci" });
  h = await startHarness({
    connections: [
      conn("tls-verified", target("127.0.0.1", { mode: "verify-full", ca: s.ca })),
      conn("tls-wrong-ca", target("127.0.0.1", { mode: "verify-full", ca: s.otherCa })),
      // localhost reaches the server, but its certificate names only 127.0.0.1 and pg.gatehouse.test
      conn("tls-wrong-name", target("localhost", { mode: "verify-full", ca: s.ca })),
      conn("tls-plain", target("127.0.0.1")),
    ].join("\n"),
  });
}, 120_000);
afterAll(async () => {
  await h?.stop();
  await server?.stop();
});

describe("postgres gateway: TLS to the target", () => {
  it("verify-full with the target's CA connects over TLS", async () => {
    const r = await (h as Harness).psql("select ssl, current_user from pg_stat_ssl where pid = pg_backend_pid()", {
      database: "tls-verified",
    });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("t|tlsuser");
  });

  it("verify-full refuses a certificate from another CA", async () => {
    const err = await (h as Harness).client("tls-wrong-ca").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "08006" });
    expect((err as Error).message).toMatch(
      /could not connect to the target of "tls-wrong-ca": (unable to verify the first certificate|.*self.signed)/,
    );
  });

  it("verify-full refuses a certificate that does not name the host", async () => {
    const err = await (h as Harness).client("tls-wrong-name").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "08006" });
    expect((err as Error).message).toMatch(
      /could not connect to the target of "tls-wrong-name": Hostname\/IP does not match certificate's altnames: Host: localhost/,
    );
  });

  it("a plain login to a hostssl-only user fails with the target's reason", async () => {
    const err = await (h as Harness).client("tls-plain").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "28000" });
    expect((err as Error).message).toMatch(/no pg_hba.conf entry .*user "tlsuser".*no encryption/);
  });
});
