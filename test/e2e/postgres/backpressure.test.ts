/**
 * Recorder back-pressure through the PostgreSQL adapter: a gateway composed like the real one, but whose session
 * recorder has a tiny high-water mark (8 KiB, hard limit 32 KiB) over a store that takes 25 ms per recording
 * write, a slow disk. Statements stream results far faster than that; the adapter must slow the session down
 * rather than drop recording events.
 */
import { DirectConnector } from "../../../src/core/adapter/index.js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readRecording } from "../../../src/core/evidence/recorder.js";
import type { RecordingEvent } from "../../../src/core/evidence/records.js";
import { verifyEvidence } from "../../../src/core/evidence/verify.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { IdentityVerifier } from "../../../src/core/identity/verifier.js";
import { PostgresSqlAnalyzer } from "../../../src/core/inspect/postgres-sql/index.js";
import { CompiledPolicy } from "../../../src/core/policy/decide.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gate } from "../../../src/core/session/gate.js";
import { startPostgresListener, type PostgresListener } from "../../../src/protocols/postgres/server.js";
import {
  cleanupDirs,
  openEvidenceStack,
  type EvidenceStack,
  slowRecordingWrites,
  tempDir,
} from "../../support/evidence.js";
import { gatewayYaml, pgConnectionYaml, testPgTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";
import { exec } from "./harness.js";

const HIGH_WATER = 8 * 1024;
const WRITE_DELAY_MS = 25;

let evidence: EvidenceStack;
let listener: PostgresListener;
let token: string;
let port: number;

beforeAll(async () => {
  const dir = tempDir("gatehouse-pg-backpressure-");
  const bot = generateStaticToken();
  token = bot.token;
  const yaml = gatewayYaml({
    data: dir,
    tokens: [{ name: "ci-bot", sha256: bot.sha256, groups: ["ci"] }],
    connections: [pgConnectionYaml(testPgTarget(services()), { group: "ci" })],
  });
  const config = parseConfig(yaml, { source: "test.yaml", baseDir: dir });
  // only the recorder's writes are slow (the audit log never writes recordings)
  evidence = await openEvidenceStack(dir, {
    wrap: slowRecordingWrites(WRITE_DELAY_MS),
    recorder: { highWaterBytes: HIGH_WATER },
  });
  const gate = new Gate({ policy: CompiledPolicy.for(config), audit: evidence.audit, recorder: evidence.recorder });
  listener = await startPostgresListener({
    listen: { host: "127.0.0.1", port: 0 },
    gate,
    connector: new DirectConnector(),
    verifier: new IdentityVerifier(config.identity),
    dataDir: dir,
    tls: { enabled: false, require: "never" },
    analyzer: await PostgresSqlAnalyzer.load(),
    maskerFor: () => undefined,
  });
  port = Number(listener.address.slice(listener.address.lastIndexOf(":") + 1));
});

afterAll(async () => {
  await listener?.close();
  await evidence?.close().catch(() => undefined);
  cleanupDirs();
});

async function recordingsSince(since: string): Promise<RecordingEvent[][]> {
  const out: RecordingEvent[][] = [];
  for (const s of await evidence.store.listSessions({})) {
    if (s.started_at < since) continue;
    const events: RecordingEvent[] = [];
    for await (const e of readRecording(evidence.store, s.session_id)) events.push(e);
    out.push(events);
  }
  return out;
}

describe("postgres gateway: recorder back-pressure", () => {
  it("records every result of a 1,500-statement query and of 400 bound statements: nothing dropped", async () => {
    const since = new Date().toISOString();
    const N = 1500;
    // one simple Query: its 1,500 results arrive in a few chunks, ~150 KB of result events against a 32 KiB limit
    const sql = Array.from({ length: N }, (_, i) => `select ${i + 1} as n`).join(";");
    const psql = await exec("psql", ["-X", "-At", "-c", sql, `host=127.0.0.1 port=${port} dbname=app-db user=ci-bot`], {
      env: { ...process.env, PGPASSWORD: token },
      maxBuffer: 16 * 1024 * 1024,
    });
    expect(psql.stdout.trim().split("\n")).toHaveLength(N);

    // extended protocol: a Bind event and a result event per statement, and one large result
    const c = new pg.Client({ host: "127.0.0.1", port, database: "app-db", user: "ci-bot", password: token });
    await c.connect();
    const M = 400;
    const runs = Array.from({ length: M }, (_, i) =>
      c.query("select $1::int * 2 as n, $2::text as s", [i, "x".repeat(200)]),
    );
    expect((await Promise.all(runs)).map((r) => r.rows[0].n)).toEqual(Array.from({ length: M }, (_, i) => i * 2));
    const big = await c.query("select g, repeat('y', 200) as pad from generate_series(1, 100000) g");
    expect(big.rowCount).toBe(100_000);
    await c.end();
    await listener.close(); // ends the sessions: seals written once the recorder drained
    await evidence.recorder.flush();

    const recordings = await recordingsSince(since);
    expect(recordings).toHaveLength(2);
    const [first, second] = recordings.sort((a, b) => b.length - a.length) as [RecordingEvent[], RecordingEvent[]];
    const statements = (events: RecordingEvent[]) =>
      events.filter((e) => e.kind === "result").map((e) => (e.data as { statement: number }).statement);
    // the 1,500-statement query: one result per statement, in order
    expect(statements(first)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    // the pg session: every Bind (400) and every result (the 400 statements and the large simple query)
    expect(second.filter((e) => e.kind === "bind")).toHaveLength(M);
    expect(statements(second)).toHaveLength(M + 1);
    expect(second.find((e) => e.kind === "result" && (e.data as { rows: number }).rows === 100_000)).toBeDefined();
    // consecutive, chained and sealed
    for (const events of recordings) expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const report = await verifyEvidence(evidence.store);
    expect(report.ok).toBe(true);
    expect(report.sessions).toMatchObject({ unsealed: 0 });
  });
});
