import { describe, expect, it } from "vitest";
import type { RecordingEvent, SessionRecord } from "../../src/core/evidence/records.js";
import { renderAsciicast, renderJson, renderText } from "../../src/core/evidence/replay.js";

const session: SessionRecord = {
  session_id: "s_1",
  connection: "app-host",
  protocol: "ssh",
  identity: { subject: "deploy-bot", kind: "bot", groups: ["ci"], issuer: "gatehouse", token_id: "t" },
  started_at: "2026-11-22T10:00:00.000Z",
  seal: {
    session_id: "s_1",
    count: 5,
    last_hash: "h",
    ended_at: "2026-11-22T10:00:03.000Z",
    reason: "client closed",
    signature: "sig",
    key_id: "k",
  },
};

function ev(seq: number, t: number, kind: string, data: unknown): RecordingEvent {
  return { session_id: "s_1", seq, t, kind, data, prev_hash: "p", hash: "h" };
}

async function* stream(events: RecordingEvent[]): AsyncIterable<RecordingEvent> {
  yield* events;
}

const events = [
  ev(1, 0, "resize", { cols: 120, rows: 40 }),
  ev(2, 250, "output", "$ "),
  ev(3, 1000, "input", { data: "ls\r" }),
  ev(4, 1200, "request", { text: "ls" }),
  ev(5, 1200, "decision", { outcome: "allow", rule: "connections[0].access" }),
  ev(6, 1500, "output", { data: "README.md\r\n$ " }),
  ev(7, 2000, "result", {
    tag: "SELECT 2",
    rows: 2,
    ms: 3,
    columns: ["id", "email"],
    sample: [
      ["1", "********"],
      ["2", null],
    ],
  }),
];

describe("replay rendering", () => {
  it("asciicast v2: header with the first size, then o/i/r events in seconds", async () => {
    const lines = (await renderAsciicast(session, stream(events)))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ version: 2, width: 120, height: 40, timestamp: 1795341600, title: "app-host s_1" });
    expect(lines.slice(1)).toEqual([
      [0, "r", "120x40"],
      [0.25, "o", "$ "],
      [1, "i", "ls\r"],
      [1.5, "o", "README.md\r\n$ "],
    ]);
  });

  it("text: header, a timeline line per event, result samples as a table", async () => {
    const text = await renderText(session, stream(events));
    expect(text).toContain("session s_1  connection app-host (ssh)");
    expect(text).toContain("identity deploy-bot (bot; groups ci)");
    expect(text).toContain("ended 2026-11-22T10:00:03.000Z (client closed), 5 events, sealed");
    expect(text).toContain("+1.200s    request   ls");
    expect(text).toContain("+1.200s    decision  allow by connections[0].access");
    expect(text).toContain("+2.000s    result    SELECT 2 — 2 rows in 3 ms");
    expect(text).toMatch(/id \| email\n +---\+---------\n +1 {2}\| \*{8}\n +2 {2}\| NULL/);
  });

  it("text: a request event carrying its decision prints both lines (current recordings)", async () => {
    const merged = [
      ev(1, 400, "request", {
        text: "DROP TABLE users",
        decision: { outcome: "deny", rule: "connections[0].guardrails[0]", reason: "no drops" },
      }),
    ];
    const text = await renderText(session, stream(merged));
    expect(text).toContain("+0.400s    request   DROP TABLE users\n");
    expect(text).toContain("+0.400s    decision  deny by connections[0].guardrails[0]: no drops");
  });

  it("json: the session and every event as stored", async () => {
    const doc = JSON.parse(await renderJson(session, stream(events)));
    expect(doc.session.session_id).toBe("s_1");
    expect(doc.events).toHaveLength(events.length);
    expect(doc.events[2]).toEqual(events[2]);
  });
});
