/**
 * Encode once, as `gatehouse replay` and `gatehouse audit verify` see it: a data dir written by the Gate over the
 * gateway's own store (evidence log + index), whose request events refer to their audit records, read by the
 * compiled CLI run as a separate process. Replay shows each request's text as before; verify fails for a
 * reference that does not resolve to an audit record of the same writer and session, even when the recording's
 * chain and seal are intact (a faulty or forging writer holding the key).
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/core/evidence/audit-log.js";
import { SessionRecorder } from "../../src/core/evidence/recorder.js";
import { auditReference } from "../../src/core/evidence/request-reference.js";
import type { VerifyReport } from "../../src/core/evidence/verify.js";
import type { Identity } from "../../src/core/identity/identity.js";
import { CompiledPolicy } from "../../src/core/policy/decide.js";
import { factsFrom } from "../../src/core/policy/facts.js";
import { parseConfig } from "../../src/core/policy/loader.js";
import { Gate, type GatedSession } from "../../src/core/session/gate.js";
import { openEvidenceStore } from "../../src/core/store/open.js";
import type { Store } from "../../src/core/store/types.js";
import { compiledCli } from "../support/compiled-cli.js";
import { cleanupDirs, newKey, tempDir } from "./helpers.js";

/** The CLI as shipped, built from the current sources (test/support/compiled-cli.ts). */
let launcher: string;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [launcher, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

const CONFIG = `
connections:
  - name: app-db
    type: postgres
    target: { host: 127.0.0.1, port: 5432, user: app, password: x }
    access: [group:ci]
    guardrails:
      - deny: { statements: [drop] }
`;
const ciBot: Identity = { subject: "ci-bot", kind: "bot", groups: ["ci"], issuer: "gatehouse", tokenId: "ci-bot" };
const select = (text: string) => ({ text, facts: factsFrom({ statements: [{ kind: "select", tables: [] }] }) });
const drop = { text: "drop table users", facts: factsFrom({ statements: [{ kind: "drop", tables: ["users"] }] }) };

/** A data dir written by the Gate; `more` may add sessions before everything is closed. */
async function dataDir(more?: (gate: Gate, store: Store) => Promise<void>): Promise<{ dir: string; session: string }> {
  const dir = tempDir();
  const key = newKey();
  const store = await openEvidenceStore({ dataDir: dir, durability: "os" });
  const audit = await AuditLog.open(store, { signingKey: key, checkpointIntervalMs: 0 });
  const recorder = new SessionRecorder(store, { signingKey: key });
  const gate = new Gate({ policy: CompiledPolicy.for(parseConfig(CONFIG, { source: "test.yaml" })), audit, recorder });
  const session = await gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
  expect((await session.admit({ ...select("select 1"), data: { message: "query" } })).forward).toBe(true);
  expect((await session.admit(drop)).forward).toBe(false);
  // an event as earlier versions recorded every request: the text in the event itself
  session.recording.record("request", { text: "select 'from before'", decision: { outcome: "allow" } });
  expect((await session.admit({ ...select("select $1"), shown: { text: "select /* redacted */ $1" } })).forward).toBe(
    true,
  );
  await more?.(gate, store);
  await session.close("client closed");
  await recorder.close();
  await audit.close();
  await store.close();
  return { dir, session: session.id };
}

beforeAll(async () => {
  launcher = await compiledCli();
}, 180_000);

afterAll(() => cleanupDirs());

describe("request events that refer to their audit records (compiled CLI)", () => {
  it("verify passes, and replay shows each request's text as events that carried it did", async () => {
    const { dir, session } = await dataDir();
    const v = cli("audit", "verify", "--data", dir);
    expect(v.stderr).toBe("");
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^sessions: 1 verified \(1 sealed, 0 unsealed\)$/m);
    const r = cli("replay", session, "--data", dir);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n").map((l) => l.replace(/^\+\d+\.\d+s\s+/, ""));
    expect(lines.filter((l) => /^(request|decision) /.test(l))).toEqual([
      "request   select 1",
      "decision  allow by connections[0].access",
      "request   drop table users",
      expect.stringMatching(/^decision {2}deny by connections\[0\]\.guardrails\[0\]: /) as unknown,
      "request   select 'from before'",
      "decision  allow",
      "request   select /* redacted */ $1",
      "decision  allow by connections[0].access",
    ]);
    // the raw events: the reference as stored, with the record's members shown beside it
    const json = JSON.parse(cli("replay", session, "--data", dir, "--format", "json").stdout) as {
      events: { kind: string; data: Record<string, unknown> }[];
    };
    expect(json.events[0]?.data).toMatchObject({ text: "select 1", message: "query", audit: { writer: "w1" } });
    expect(r.stdout).not.toContain("select $1\n");
  }, 60_000);

  it("verify fails for a reference that does not resolve to a request record of the same writer and session", async () => {
    const bad: { session: string; why: RegExp }[] = [];
    const { dir } = await dataDir(async (gate, store) => {
      const open = () => gate.openSession({ identity: ciBot, connection: "app-db", protocol: "postgres" });
      const mine = await open();
      const theirs = await open();
      const a = (await mine.admit(select("select 2"))).record!;
      const b = (await theirs.admit(select("select 3"))).record!;
      // each case: a session whose chain and seal are intact but whose one request event refers elsewhere
      const cases: [unknown, RegExp][] = [
        [{ hash: "0".repeat(64), seq: a.seq, writer: "w1" }, /the record at writer w1 seq \d+ has another hash/],
        [{ hash: a.hash, seq: 99_999, writer: "w1" }, /its audit record \(writer w1 seq 99999\) is not in the log/],
        [{ hash: b.hash, seq: b.seq, writer: "w1" }, new RegExp(`belongs to session ${theirs.id}`)],
        [{ hash: a.hash, seq: a.seq, writer: "w2" }, /names writer w2 seq \d+, not the chain of the writer/],
        [{ hash: a.hash, seq: a.seq }, /names the legacy chain seq \d+/],
        [{ hash: a.hash, seq: "1", writer: "w1" }, /its audit reference is malformed/],
      ];
      for (const [audit, why] of cases) {
        const s: GatedSession = await open();
        // refers to `a`, a record of session `mine`, unless the case says otherwise: the session differs anyway
        s.recording.record("request", { audit, decision: { outcome: "allow" } });
        bad.push({ session: s.id, why });
        await s.close("client closed");
      }
      // a record of the same session, but not a request's: its session.start
      const s = await open();
      const started = (await store.lastAudit())!;
      expect(started).toMatchObject({ type: "session.start", session_id: s.id });
      s.recording.record("request", { audit: auditReference(started), decision: { outcome: "allow" } });
      bad.push({ session: s.id, why: /is a session\.start record/ });
      await s.close("client closed");
      await mine.close("client closed");
      await theirs.close("client closed");
    });
    const v = cli("audit", "verify", "--data", dir);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/^gatehouse: writer w1: session \S+: event 1: /);
    const report = JSON.parse(cli("audit", "verify", "--data", dir, "--json").stdout) as VerifyReport;
    expect(report.ok).toBe(false);
    expect(report.bad_sessions).toHaveLength(bad.length);
    for (const { session, why } of bad) {
      const found = report.bad_sessions.find((b) => b.session_id === session);
      expect(found?.message, session).toMatch(why);
    }
  }, 60_000);
});
