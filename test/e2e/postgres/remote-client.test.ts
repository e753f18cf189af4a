/**
 * The bearer token travels as a cleartext password, so by default (postgres.tls.require: remote) a client that is
 * not on loopback must use TLS. The test gives the machine a non-loopback address for its duration (on `lo`, so no
 * packet leaves the host) and connects from it.
 */
import { execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "./harness.js";

// random, so that two runs on one machine do not share (and remove) each other's address
const address = `10.213.${randomInt(0, 256)}.${randomInt(1, 255)}`;
let added = false;
let h: Harness | undefined;

beforeAll(async () => {
  try {
    execFileSync("ip", ["addr", "add", `${address}/32`, "dev", "lo"], { stdio: ["ignore", "ignore", "pipe"] });
    added = true;
  } catch (err) {
    // a safety test does not skip: without the address it cannot run, and says why
    throw new Error(`cannot add ${address} to lo (needs root and iproute2): ${String(err)}`);
  }
  h = await startHarness({ listenHost: address });
});
afterAll(async () => {
  await h?.stop();
  if (added) execFileSync("ip", ["addr", "del", `${address}/32`, "dev", "lo"]);
});

describe("postgres gateway: clients that are not on loopback", () => {
  it("are refused without TLS (28000, before any password is sent) and served with it", async () => {
    const gw = h as Harness;
    const plain = await gw.psql("select 1", { sslmode: "disable" });
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/requires TLS for this client/);
    const tls = await gw.psql("select 1", { sslmode: "require" });
    expect(tls.stderr).toBe("");
    expect(tls.stdout).toBe("1");
    // the refused attempt never got as far as a login or a session
    const audit = await gw.gateway.store.readAudit({ fromSeq: 1, limit: 1000 });
    expect(audit.filter((a) => a.type === "session.start")).toHaveLength(1);
    expect(audit.filter((a) => a.type === "auth.failed")).toHaveLength(0);
  });
});
