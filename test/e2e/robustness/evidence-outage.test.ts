/**
 * Evidence outage (issue 5, item 4): the gateway's data directory is a small tmpfs that really runs out of space
 * (ENOSPC/SQLITE_FULL from the kernel, not a simulated error), while a client session is open.
 *
 * Expected (DESIGN.md section 1, fail closed): statements are refused in-protocol with a message that names the
 * evidence, no statement reaches the target without its audit record, new sessions are refused too, and once
 * space is freed the same session and new ones work again; the evidence left behind verifies.
 *
 * Needs root for `mount -t tmpfs` (the e2e project runs as root in CI); without it the test fails and says why.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statementLog } from "../postgres/harness.js";
import {
  loggedStatement,
  readAudit,
  runCli,
  startGatewayProcess,
  writeConfig,
  type GatewayProcess,
} from "./process.js";
import { fillDisk, mountTmpfs, unmountTmpfs } from "./tmpfs.js";

const RUN = `outage-${randomUUID().slice(0, 8)}`;
const dir = mkdtempSync(join(tmpdir(), "gatehouse-outage-"));
const data = join(dir, "data");
const filler = join(data, "filler");

let gw: GatewayProcess | undefined;
let token = "";
let config = "";
const client = (): pg.Client => {
  const c = new pg.Client({
    host: "127.0.0.1",
    port: gw?.port ?? 0,
    database: "app-db",
    user: "ci-bot",
    password: token,
    connectionTimeoutMillis: 10_000,
  });
  c.on("error", () => undefined);
  return c;
};

let mounted = false;

beforeAll(async () => {
  mountTmpfs(data);
  mounted = true;
  ({ path: config, token } = await writeConfig(dir, data));
  gw = await startGatewayProcess(config);
}, 60_000);

afterAll(async () => {
  if (gw && gw.child.exitCode === null) {
    process.kill(gw.pid, "SIGKILL");
    await gw.exited;
  }
  if (mounted) unmountTmpfs(data);
  rmSync(dir, { recursive: true, force: true });
});

describe("evidence store out of space (real ENOSPC on a tmpfs)", () => {
  it("refuses statements while evidence cannot be written, and resumes once space is free", async () => {
    const session = client();
    await session.connect();
    expect((await session.query(`SELECT 'before' AS v /* ${RUN}-0 */`)).rows).toEqual([{ v: "before" }]);

    const filled = fillDisk(filler);
    expect(filled).toBeGreaterThan(0);
    // Large statements grow the evidence log quickly: a write may still land in a block the file system had
    // already allocated, which is fine (the record is durable); the first write that needs a new block must fail,
    // be cut off again, and refuse its request.
    const pad = "x".repeat(32 * 1024);
    const outcomes: { i: number; ok: boolean; code?: string; message?: string }[] = [];
    for (let i = 1; i <= 200; i++) {
      try {
        await session.query(`SELECT length('${pad}') AS n /* ${RUN}-${i} */`);
        outcomes.push({ i, ok: true });
      } catch (err) {
        const e = err as { code?: string; message?: string };
        outcomes.push({
          i,
          ok: false,
          ...(e.code ? { code: e.code } : {}),
          ...(e.message ? { message: e.message } : {}),
        });
        break;
      }
    }
    const refused = outcomes.find((o) => !o.ok);
    process.stderr.write(
      `evidence-outage: disk full after ${filled} filler bytes; ${outcomes.length - 1} statement(s) still committed ` +
        `into allocated space, then: ${refused?.code} ${refused?.message}\n`,
    );
    expect(refused, `no refusal in ${outcomes.length} statements on a full disk`).toBeDefined();
    expect(refused?.code).toBe("42501");
    expect(refused?.message).toMatch(/evidence/i);
    // the health check says so, with the cause (a load balancer sends clients elsewhere meanwhile)
    const unhealthy = await fetch(`${gw?.api}/healthz`);
    expect(unhealthy.status).toBe(503);
    expect(await unhealthy.json()).toMatchObject({ ok: false, audit: { error: expect.stringMatching(/ENOSPC/) } });

    // the session stays usable in-protocol (ErrorResponse, then ReadyForQuery): a second statement as large is
    // refused too (a smaller one may fit into WAL space the failed commit had allocated: that one is durable)
    await expect(session.query(`SELECT length('${pad}') AS still_refused /* ${RUN}-again */`)).rejects.toMatchObject({
      code: "42501",
    });
    // a new session cannot record its session.start: refused at login
    const newcomer = client();
    await expect(newcomer.connect()).rejects.toThrow(/evidence/i);

    // space comes back: the same session and new ones work again
    rmSync(filler);
    let resumed: unknown;
    for (let i = 0; i < 50 && resumed === undefined; i++) {
      try {
        resumed = (await session.query(`SELECT 'after' AS v /* ${RUN}-after-${i} */`)).rows;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(resumed).toEqual([{ v: "after" }]);
    const healthy = await fetch(`${gw?.api}/healthz`);
    expect(healthy.status).toBe(200);
    expect(await healthy.json()).toMatchObject({ ok: true });
    const fresh = client();
    await fresh.connect();
    expect((await fresh.query(`SELECT 'fresh' AS v /* ${RUN}-fresh */`)).rows).toEqual([{ v: "fresh" }]);
    await fresh.end();
    await session.end();

    // stop cleanly, then compare the target's own log with the evidence
    if (gw) {
      process.kill(gw.pid, "SIGTERM");
      expect(await gw.exited).toBe(0);
    }
    const audited = (await readAudit(data))
      .filter((r) => r.type === "request" && r.decision === "allow")
      .map((r) => String((r.data as { text?: unknown } | undefined)?.text ?? ""));
    const logged = (await statementLog(RUN)).map(loggedStatement).filter((t): t is string => t !== undefined);
    expect(logged.length).toBeGreaterThanOrEqual(3);
    const unaudited = logged.filter((text) => !audited.includes(text));
    expect(
      unaudited.map((t) => t.slice(0, 80)),
      "statements that reached the target unrecorded",
    ).toEqual([]);
    // nothing refused reached the target
    expect(logged.some((t) => t.includes(`${RUN}-again`))).toBe(false);

    const verify = await runCli("audit", "verify", "--data", data);
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
  }, 120_000);
});
