/**
 * Clients that vanish at awkward moments of the PostgreSQL login: each must leave nothing behind (no open
 * session in the evidence, no target backend). Found by the fuzzer (pg-fuzz.test.ts), pinned down here.
 */
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { connect } from "node:net";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, targetAdmin, type Harness } from "../postgres/harness.js";
import * as w from "../../fuzz/pg-wire.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h?.stop());

async function targetBackends(app: string): Promise<number> {
  const admin = await targetAdmin();
  try {
    const r = await admin.query<{ n: string }>(
      "select count(*) as n from pg_stat_activity where application_name = $1",
      [app],
    );
    return Number(r.rows[0]?.n ?? -1);
  } finally {
    await admin.end();
  }
}

async function openSessions(app: string): Promise<number> {
  const records = await h.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
  const ended = new Set(records.filter((r) => r.type === "session.end").map((r) => r.session_id));
  return records.filter(
    (r) =>
      r.type === "session.start" &&
      (r.data as { application_name?: string } | undefined)?.application_name === app &&
      !ended.has(r.session_id),
  ).length;
}

async function settle(app: string, ms = 8000): Promise<{ sessions: number; backends: number }> {
  const end = Date.now() + ms;
  for (;;) {
    const now = { sessions: await openSessions(app), backends: await targetBackends(app) };
    if ((now.sessions === 0 && now.backends === 0) || Date.now() > end) return now;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("postgres clients that disconnect during login", () => {
  it("a client gone before its password leaves nothing behind", async () => {
    const app = `dc-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 10; i++) {
      const s = connect(h.port, h.host);
      s.on("error", () => undefined);
      await once(s, "connect");
      s.write(w.startup({ user: "x", database: "app-db", application_name: app }));
      s.destroy();
    }
    expect(await settle(app)).toEqual({ sessions: 0, backends: 0 });
  });

  // the window between the password and the target login: session.start is recorded, the target not yet reached
  it("a client gone while session.start is being committed leaves nothing behind", async () => {
    const app = `dc-${randomUUID().slice(0, 8)}`;
    const lock = new Database(join(h.dir, "gatehouse.db"));
    try {
      for (let i = 0; i < 3; i++) {
        const s = connect(h.port, h.host);
        s.on("error", () => undefined);
        let got = Buffer.alloc(0);
        s.on("data", (d: Buffer) => (got = Buffer.concat([got, d])));
        await once(s, "connect");
        s.write(w.startup({ user: "x", database: "app-db", application_name: app }));
        while (!w.readBackend(got).messages.some((m) => m.type === "R")) await once(s, "data");
        lock.exec("BEGIN IMMEDIATE"); // session.start's commit now waits (busy_timeout 5 s)
        s.write(w.password(h.token));
        await new Promise((r) => setTimeout(r, 200));
        s.destroy();
        await new Promise((r) => setTimeout(r, 200));
        lock.exec("COMMIT");
      }
    } finally {
      if (lock.inTransaction) lock.exec("COMMIT");
      lock.close();
    }
    expect(await settle(app)).toEqual({ sessions: 0, backends: 0 });
  });
});
