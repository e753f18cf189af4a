import { afterEach, describe, expect, it } from "vitest";
import { EvidenceUnavailableError } from "../../src/core/evidence/errors.js";
import { readRecording, SessionRecorder } from "../../src/core/evidence/recorder.js";
import { verifyEvidence } from "../../src/core/evidence/verify.js";
import { openStore, type Store } from "../../src/core/store/index.js";
import { cleanupDirs, faultyStore, newKey, tempDir } from "./helpers.js";

const open: Store[] = [];
async function store(): Promise<Store> {
  const s = await openStore({ dataDir: tempDir() });
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  cleanupDirs();
});

const identity = { subject: "deploy-bot", kind: "bot" as const, groups: ["ci"], issuer: "gatehouse", token_id: "t" };

/** Counts the recording writes a store is asked for: a retry loop shows up as more of them. */
function counting(inner: Store): { store: Store; writes: () => number } {
  let writes = 0;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      const f = (v as (...a: unknown[]) => unknown).bind(target);
      return prop === "writeRecording" ? (...a: unknown[]) => (writes++, f(...a)) : f;
    },
  });
  return { store, writes: () => writes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How a promise settled within `ms`: "resolved", its rejection, or "pending" (a drain that never comes back). */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((r) => (timer = setTimeout(() => r("pending"), ms)));
  try {
    return await Promise.race([
      p.then(
        () => "resolved",
        (err: unknown) => err,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("SessionRecorder", () => {
  it("records, seals, reads back in order and verifies", async () => {
    const s = await store();
    const recorder = new SessionRecorder(s, { signingKey: newKey(), flushIntervalMs: 10 });
    const a = await recorder.start({ sessionId: "s-a", connection: "app-host", protocol: "ssh", identity });
    const b = await recorder.start({ sessionId: "s-b", connection: "app-db", protocol: "postgres" });
    a.record("resize", { cols: 80, rows: 24 });
    for (let i = 0; i < 1500; i++) {
      a.record("input", `echo ${i}\n`);
      b.record("request", { sql: `select ${i}` });
    }
    a.record("output", "done\n");
    const seal = await a.seal("client closed");
    expect(seal).toMatchObject({ session_id: "s-a", count: 1502, reason: "client closed" });
    expect(() => a.record("input", "x")).toThrow(/sealed/);
    await b.seal("killed");

    const events = await collect(readRecording(s, "s-a"));
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 1502 }, (_, i) => i + 1));
    expect(events[0]).toMatchObject({ kind: "resize", data: { cols: 80, rows: 24 } });
    expect(events[1]).toMatchObject({ kind: "input", data: "echo 0\n" });
    expect(events.at(-1)?.hash).toBe(seal.last_hash);
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.prev_hash).toBe(events[i - 1]!.hash);
      expect(events[i]!.t).toBeGreaterThanOrEqual(events[i - 1]!.t);
    }
    expect(await collect(recorder.readRecording("s-b"))).toHaveLength(1500);
    expect((await s.getSession("s-a"))?.seal?.count).toBe(1502);
    const report = await verifyEvidence(s);
    expect(report).toMatchObject({ ok: true, sessions: { verified: 2, sealed: 2, unsealed: 0 } });
  });

  it("refuses a duplicate session id", async () => {
    const recorder = new SessionRecorder(await store(), { signingKey: newKey() });
    await recorder.start({ sessionId: "dup", connection: "c", protocol: "ssh" });
    await expect(recorder.start({ sessionId: "dup", connection: "c", protocol: "ssh" })).rejects.toThrow(/already/);
  });

  it("applies back-pressure and bounds memory when the store is slower than the producer", async () => {
    const inner = await store();
    const { store: s, control } = faultyStore(inner);
    const recorder = new SessionRecorder(s, {
      signingKey: newKey(),
      highWaterBytes: 64 * 1024,
      maxBufferedBytes: 256 * 1024,
      flushIntervalMs: 5,
    });
    const rec = await recorder.start({ sessionId: "fast", connection: "app-host", protocol: "ssh" });
    control.failWrites = true; // the store stalls: nothing can be written
    const chunk = "x".repeat(1000);
    let paused = false;
    let overflow: unknown;
    for (let i = 0; i < 1000; i++) {
      try {
        if (!rec.record("output", chunk)) paused = true;
      } catch (err) {
        overflow = err;
        break;
      }
    }
    expect(paused).toBe(true);
    expect(overflow).toBeInstanceOf(EvidenceUnavailableError);
    expect(recorder.bufferedBytes).toBeLessThanOrEqual(256 * 1024);
    const recorded = rec.count;
    // the store recovers: queued events are retried, the producer drains and the recording stays whole
    control.failWrites = false;
    await rec.drain();
    expect(recorder.bufferedBytes).toBeLessThan(64 * 1024);
    // a well-behaved producer: pause on false, await drain
    for (let i = 0; i < 500; i++) if (!rec.record("output", chunk)) await rec.drain();
    await rec.seal("done");
    expect(await collect(readRecording(inner, "fast"))).toHaveLength(recorded + 500);
    expect((await verifyEvidence(inner)).ok).toBe(true);
  });

  it("drain() rejects its waiters when a write fails, and writes the queued events once the store recovers", async () => {
    const inner = await store();
    const { store: faulty, control } = faultyStore(inner);
    const { store: s, writes } = counting(faulty);
    const recorder = new SessionRecorder(s, { signingKey: newKey(), highWaterBytes: 4096, flushIntervalMs: 5 });
    const rec = await recorder.start({ sessionId: "stalled", connection: "app-db", protocol: "postgres" });
    control.failWrites = true;
    let recorded = 0;
    while (rec.record("result", { rows: recorded++, pad: "r".repeat(500) }));
    // a producer above the high-water mark pauses and waits: the failed write must reach it, not a silent hang
    const first = await settledWithin(rec.drain(), 1000);
    expect(first).toBeInstanceOf(EvidenceUnavailableError);
    expect(String(first)).toMatch(/recording unavailable: SQLITE_IOERR: disk I\/O error/);
    // asked again while the store still fails: rejected by the next attempt, which fails too
    const attempts = writes();
    const second = await settledWithin(rec.drain(), 1000);
    expect(second).toBeInstanceOf(EvidenceUnavailableError);
    expect(writes()).toBeGreaterThan(attempts);
    expect(recorder.bufferedBytes).toBeGreaterThanOrEqual(4096); // nothing was dropped

    control.failWrites = false;
    await expect(settledWithin(rec.drain(), 1000)).resolves.toBe("resolved");
    expect(recorder.bufferedBytes).toBeLessThan(4096);
    await rec.seal("done");
    const events = await collect(readRecording(inner, "stalled"));
    expect(events.map((e) => (e.data as { rows: number }).rows)).toEqual(Array.from({ length: recorded }, (_, i) => i));
    const report = await verifyEvidence(inner);
    expect(report.ok).toBe(true);
    expect(report.sessions).toMatchObject({ unsealed: 0 });
  });

  it("seal rejects with EvidenceUnavailableError while the store fails", async () => {
    const inner = await store();
    const { store: s, control } = faultyStore(inner);
    const recorder = new SessionRecorder(s, { signingKey: newKey() });
    const rec = await recorder.start({ sessionId: "x", connection: "c", protocol: "ssh" });
    rec.record("input", "ls\n");
    control.failWrites = true;
    await expect(rec.seal("end")).rejects.toBeInstanceOf(EvidenceUnavailableError);
    control.failWrites = false;
    await recorder.flush();
    expect((await inner.getSession("x"))?.seal?.count).toBe(1);
  });

  it("after close refuses new sessions, events and seals at once, and never writes again", async () => {
    const inner = await store();
    const { store: s, writes } = counting(inner);
    const recorder = new SessionRecorder(s, { signingKey: newKey(), flushIntervalMs: 5 });
    const rec = await recorder.start({ sessionId: "open", connection: "c", protocol: "postgres" });
    rec.record("request", { sql: "select 1" });
    await recorder.close();
    // what was queued before close() is written; the session stays unsealed
    expect(await collect(readRecording(inner, "open"))).toHaveLength(1);
    expect((await inner.getSession("open"))?.seal).toBeUndefined();
    const written = writes();
    await inner.close(); // as the gateway does right after

    expect(() => rec.record("request", { sql: "select 2" })).toThrow(EvidenceUnavailableError);
    expect(() => rec.record("request", { sql: "select 3" })).toThrow(/recorder is closed/);
    const sealed = rec.seal("late");
    await expect(sealed).rejects.toBeInstanceOf(EvidenceUnavailableError);
    await expect(sealed).rejects.toThrow(/recorder is closed/);
    await expect(recorder.start({ sessionId: "late", connection: "c", protocol: "ssh" })).rejects.toThrow(
      /recorder is closed/,
    );
    await expect(rec.drain()).resolves.toBeUndefined();
    await sleep(300); // a retry timer would have fired several times (50, 100, 200 ms)
    expect(writes()).toBe(written);
  });

  it("close reports a failed final write and leaves no retry timer behind", async () => {
    const inner = await store();
    const { store: faulty, control } = faultyStore(inner);
    const { store: s, writes } = counting(faulty);
    const recorder = new SessionRecorder(s, { signingKey: newKey(), flushIntervalMs: 5 });
    const rec = await recorder.start({ sessionId: "x", connection: "c", protocol: "ssh" });
    control.failWrites = true;
    rec.record("input", "ls\n");
    await sleep(20); // the batch timer's write fails: a retry is scheduled
    const err = await recorder.close().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvidenceUnavailableError);
    expect(String(err)).toMatch(/disk I\/O error/);
    const attempts = writes();
    await sleep(300);
    expect(writes()).toBe(attempts);
    expect(() => rec.record("input", "pwd\n")).toThrow(/recorder is closed/);
  });
});
