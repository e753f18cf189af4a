/**
 * Gateway.stop() while PostgreSQL clients are still connected: every session must end in the evidence
 * (`session.end` in the audit log, a sealed recording) before the recorder and the audit log close. The
 * listener destroys the client sockets; their 'close' events (which end the sessions) may come later than
 * the listener's own close, so it has to wait for them.
 */
import { rmSync } from "node:fs";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { verifyEvidence } from "../../../src/core/evidence/verify.js";
import { openStore } from "../../../src/core/store/open.js";
import { startHarness, type Harness } from "../postgres/harness.js";

let h: Harness | undefined;
const clients: pg.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
  if (h) rmSync(h.dir, { recursive: true, force: true });
  h = undefined;
});

async function connect(harness: Harness, ssl: boolean): Promise<pg.Client> {
  const c = new pg.Client({
    host: harness.host,
    port: harness.port,
    database: "app-db",
    user: "ci-bot",
    password: harness.token,
    ssl: ssl ? { rejectUnauthorized: false } : false,
  });
  c.on("error", () => undefined); // the gateway goes away under it
  clients.push(c);
  await c.connect();
  return c;
}

describe("gateway stop with live postgres sessions", () => {
  it("ends and seals every session before the evidence closes", async () => {
    h = await startHarness();
    const live = await Promise.all([false, false, true, true].map((ssl) => connect(h as Harness, ssl)));
    for (const c of live) expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    await live[0]?.query("begin"); // one of them in the middle of a transaction

    await h.gateway.stop("test");

    const store = await openStore({ dataDir: h.dir, readonly: true });
    try {
      const records = await store.readAudit({ fromSeq: 1, limit: 100_000 });
      const started = records.filter((r) => r.type === "session.start").map((r) => r.session_id);
      const ended = records.filter((r) => r.type === "session.end").map((r) => r.session_id);
      expect(started).toHaveLength(4);
      expect(new Set(ended)).toEqual(new Set(started));
      for (const id of started) {
        const s = await store.getSession(id as string);
        expect(s?.seal, `recording of ${id} sealed`).toBeDefined();
        expect(s?.seal?.reason).toBe("client closed");
      }
      // the sessions ended before the gateway recorded its own stop
      expect(records.at(-1)?.type).toBe("gateway.stop");
      const report = await verifyEvidence(store, { dataDir: h.dir });
      expect(report).toMatchObject({ ok: true, sessions: { verified: 4, sealed: 4, unsealed: 0 } });
    } finally {
      await store.close();
    }
  });
});
