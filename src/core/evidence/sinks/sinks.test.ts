import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Socket } from "node:net";
import { createSocket } from "node:dgram";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AuditRecord } from "../audit-event.js";
import { canonicalJson } from "../canonical.js";
import {
  createSinks,
  FileSink,
  HttpSink,
  PermanentSinkError,
  SinkForwarder,
  SyslogSink,
  type AuditSink,
  type SinkLogger,
} from "./index.js";

function record(seq: number, type = "request"): AuditRecord {
  return {
    seq,
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    type,
    connection: "app-db",
    session_id: `s-${seq}`,
    decision: "allow",
    data: { statement: `select ${seq}`, quote: 'a "b" ]' },
    prev_hash: String(seq - 1).padStart(64, "0"),
    hash: String(seq).padStart(64, "0"),
  };
}
const records = (from: number, to: number): AuditRecord[] =>
  Array.from({ length: to - from + 1 }, (_, i) => record(from + i));

function captureLogger(): SinkLogger & { warnings: string[]; errors: string[] } {
  const warnings: string[] = [];
  const errors: string[] = [];
  return { warnings, errors, warn: (m) => warnings.push(m), error: (m) => errors.push(m) };
}

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempFile(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "gatehouse-sink-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return join(dir, "nested", name);
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    server.closeAllConnections(); // a failed test may leave keep-alive connections that would block close()
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

describe("FileSink", () => {
  it("appends one canonical record per line across batches and knows its last seq", async () => {
    const path = await tempFile("audit.jsonl");
    const sink = new FileSink(path);
    expect(await sink.lastDeliveredSeq()).toBeUndefined();
    await sink.deliver(records(1, 2));
    await sink.deliver(records(3, 3));
    await sink.close();
    const lines = (await readFile(path, "utf8")).split("\n");
    expect(lines).toEqual([...records(1, 3).map((r) => canonicalJson(r)), ""]);
    expect(JSON.parse(lines[2]!)).toEqual(record(3));

    // A torn last line (crash mid-write) is skipped when finding the position.
    await writeFile(path, (await readFile(path, "utf8")) + '{"seq":4,"ty', "utf8");
    const reopened = new FileSink(path);
    expect(await reopened.lastDeliveredSeq()).toBe(3);
    await reopened.close();
  });

  it("catches up from the store on restart: records committed while it was down come first, in order", async () => {
    const path = await tempFile("audit.jsonl");
    const first = new FileSink(path);
    await first.deliver(records(1, 3));
    await first.close();

    const store = records(1, 10);
    const fwd = new SinkForwarder([new FileSink(path)], {
      backfill: async (from, limit) => store.filter((r) => r.seq >= from).slice(0, limit),
      maxBatch: 2,
      logger: captureLogger(),
    });
    fwd.enqueue(records(8, 10)); // the first commit after the restart
    await fwd.flush();
    await fwd.close();
    const seqs = (await readFile(path, "utf8"))
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as AuditRecord).seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(fwd.stats()[0]).toMatchObject({ delivered: 7, backfilled: 4, dropped: 0 });
  });
});

describe("HttpSink through the forwarder", () => {
  it("retries 5xx with backoff, then delivers the same batch once with the configured headers", async () => {
    const seen: { status: number; auth: string | undefined; type: string | undefined; body: string }[] = [];
    const server = createHttpServer(async (req, res) => {
      const status = seen.length < 2 ? 503 : 204;
      seen.push({
        status,
        auth: req.headers.authorization,
        type: req.headers["content-type"],
        body: await body(req),
      });
      res.writeHead(status).end();
    });
    const url = await listen(server);
    const logger = captureLogger();
    const fwd = new SinkForwarder(
      createSinks([{ type: "http", url: `${url}/ingest`, headers: { Authorization: "Bearer t" } }]),
      {
        retryBaseMs: 10,
        logger,
      },
    );
    const started = Date.now();
    fwd.enqueue(records(1, 3));
    await fwd.flush();
    expect(seen.map((s) => s.status)).toEqual([503, 503, 204]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(5 + 10); // two backoff waits (>= base/2, then >= base)
    for (const s of seen) {
      expect(s.auth).toBe("Bearer t");
      expect(s.type).toBe("application/json");
      expect(JSON.parse(s.body)).toEqual(records(1, 3));
    }
    expect(fwd.stats()[0]).toMatchObject({ delivered: 3, retries: 2, rejected: 0, queued: 0 });
    expect(logger.warnings.some((w) => w.includes("503"))).toBe(true);
    await fwd.close();
  });

  it("gives up on a 4xx other than 408/429 with a logged error, and goes on with later records", async () => {
    let calls = 0;
    const server = createHttpServer((req, res) => {
      calls++;
      body(req).then(
        () => res.writeHead(calls === 1 ? 401 : 200).end(),
        () => res.destroy(),
      );
    });
    const url = await listen(server);
    const logger = captureLogger();
    const fwd = new SinkForwarder([new HttpSink({ url })], { retryBaseMs: 10, logger });
    fwd.enqueue(records(1, 2));
    await fwd.flush();
    fwd.enqueue(records(3, 3));
    await fwd.flush();
    expect(calls).toBe(2);
    expect(fwd.stats()[0]).toMatchObject({ rejected: 2, delivered: 1, retries: 0 });
    expect(logger.errors.join("\n")).toMatch(/giving up on 2 records: POST http:\/\/127\.0\.0\.1:\d+ answered 401/);
    await fwd.close();
  });

  it("retries 408/429 and network errors", async () => {
    const sink = new HttpSink({ url: "http://127.0.0.1:1/" }); // nothing listens on port 1
    await expect(sink.deliver(records(1, 1))).rejects.toMatchObject({ name: "RetryableSinkError" });
    let calls = 0;
    const server = createHttpServer((req, res) => {
      calls++;
      body(req).then(
        () =>
          calls === 1 ? res.writeHead(429, { "retry-after": "0" }).end() : res.writeHead(calls === 2 ? 408 : 200).end(),
        () => res.destroy(),
      );
    });
    const url = await listen(server);
    const fwd = new SinkForwarder([new HttpSink({ url })], { retryBaseMs: 5, logger: captureLogger() });
    fwd.enqueue(records(1, 1));
    await fwd.flush();
    expect(calls).toBe(3);
    expect(fwd.stats()[0]).toMatchObject({ delivered: 1, retries: 2 });
    await fwd.close();
  });
});

/** Parses an RFC 5424 message as our sink writes it. */
function parseSyslog(msg: string) {
  const m =
    /^<(\d+)>1 (\S+) (\S+) (\S+) (\d+) (\S+) \[gatehouse@32473 seq="(\d+)" hash="([0-9a-f]{64})" prev_hash="([0-9a-f]{64})"\] (.*)$/s.exec(
      msg,
    );
  if (!m) throw new Error(`not RFC 5424 as expected: ${msg}`);
  return {
    pri: Number(m[1]),
    time: m[2],
    app: m[4],
    msgid: m[6],
    seq: Number(m[7]),
    hash: m[8],
    json: JSON.parse(m[10]!) as unknown,
  };
}

describe("SyslogSink", () => {
  it("sends one RFC 5424 datagram per record over UDP", async () => {
    const server = createSocket("udp4");
    const got: string[] = [];
    server.on("message", (m) => got.push(m.toString("utf8")));
    await new Promise<void>((resolve) => server.bind(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const [sink] = createSinks([
      { type: "syslog", protocol: "udp", host: "127.0.0.1", port: server.address().port, facility: "auth" },
    ]);
    const blocked = { ...record(2), type: "request.blocked" };
    await sink!.deliver([record(1), blocked]);
    await expect.poll(() => got.length).toBe(2);
    const [a, b] = got.map(parseSyslog);
    expect(a).toMatchObject({ pri: 4 * 8 + 6, msgid: "request", seq: 1, hash: record(1).hash, app: "gatehouse" });
    expect(a!.time).toBe(record(1).time);
    expect(a!.json).toEqual(record(1));
    expect(b).toMatchObject({ pri: 4 * 8 + 4, msgid: "request.blocked", seq: 2 }); // refusals are warnings
    await sink!.close();
  });

  it("uses octet-counting framing over TCP with the configured facility, and reconnects", async () => {
    let buffered = "";
    const frames: string[] = [];
    const server = createTcpServer((sock) => {
      sock.setEncoding("utf8");
      sock.on("data", (chunk: string) => {
        buffered += chunk;
        // LEN SP MSG, LEN in octets: every record arrives whole, with no delimiter needed
        for (;;) {
          const sp = buffered.indexOf(" ");
          if (sp < 0) break;
          const len = Number(buffered.slice(0, sp));
          const bytes = Buffer.from(buffered.slice(sp + 1), "utf8");
          if (bytes.length < len) break;
          frames.push(bytes.subarray(0, len).toString("utf8"));
          buffered = bytes.subarray(len).toString("utf8");
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    const sockets = new Set<Socket>();
    server.on("connection", (s) => sockets.add(s));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    });

    const sink = new SyslogSink({ address: `tcp://127.0.0.1:${port}`, facility: "local3" });
    const unicode = { ...record(3), data: { statement: "select 'ünïcødé ✓'" } };
    await sink.deliver([record(1), record(2), unicode]);
    await expect.poll(() => frames.length).toBe(3);
    expect(frames.map(parseSyslog).map((f) => [f.pri, f.seq])).toEqual([
      [19 * 8 + 6, 1],
      [19 * 8 + 6, 2],
      [19 * 8 + 6, 3],
    ]);
    expect(parseSyslog(frames[2]!).json).toEqual(unicode);

    // The receiver drops the connection: the next batch opens a new one.
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    let sent = false;
    for (let i = 0; i < 20 && !sent; i++) {
      sent = await sink.deliver([record(4)]).then(
        () => true,
        () => false,
      );
    }
    await expect.poll(() => frames.length).toBe(4);
    expect(parseSyslog(frames[3]!).seq).toBe(4);
    await sink.close();
  });

  it("builds sinks from validated config entries and names the entry when one is unusable", () => {
    expect(() =>
      createSinks([
        { type: "file", path: "/tmp/x" },
        { type: "http", url: "ftp://x", headers: {} },
      ]),
    ).toThrow(/audit\.sinks\[1\]: http sink: url must be http:\/\/ or https:\/\//);
    const [sink] = createSinks([{ type: "syslog", protocol: "tcp", host: "::1", port: 514, facility: "local7" }]);
    expect(sink?.name).toBe("syslog:tcp://[::1]:514");
  });
});

describe("SinkForwarder", () => {
  /** A sink whose deliveries wait until the test releases them. */
  function gatedSink(): AuditSink & { got: number[]; release: () => void } {
    let open!: () => void;
    let gate = new Promise<void>((r) => (open = r));
    const got: number[] = [];
    return {
      name: "gated",
      got,
      release: () => open(),
      async deliver(batch) {
        await gate;
        got.push(...batch.map((r) => r.seq));
        gate = Promise.resolve();
      },
      async close() {},
    };
  }

  it("never blocks the caller; a full queue drops the oldest with a warning, then backfills them from the store", async () => {
    const sink = gatedSink();
    const logger = captureLogger();
    const store = records(1, 50);
    const fwd = new SinkForwarder([sink], {
      maxQueue: 5,
      maxBatch: 4,
      logger,
      backfill: async (from, limit) => store.filter((r) => r.seq >= from).slice(0, limit),
    });
    for (let seq = 1; seq <= 50; seq++) fwd.enqueue([record(seq)]); // returns at once although the sink is stuck
    await new Promise((r) => setTimeout(r, 10));
    const stuck = fwd.stats()[0]!;
    // The worker starts after the caller's synchronous burst, so all but the newest five were dropped.
    expect(stuck.dropped).toBe(45);
    // The worker has already read seq 1..4 back from the store and waits on the sink with them.
    expect(stuck.gap).toEqual({ from: 5, to: 45 });
    expect(stuck.queued).toBe(5 + 4);
    expect(logger.warnings.filter((w) => w.includes("queue full"))).toHaveLength(1);
    sink.release();
    await fwd.flush();
    expect(sink.got).toEqual(store.map((r) => r.seq)); // every record exactly once, in seq order
    expect(fwd.stats()[0]).toMatchObject({ delivered: 50, backfilled: 45, queued: 0 });
    await fwd.close();
  });

  it("without a store to read from, counts what it dropped and delivers the rest", async () => {
    const sink = gatedSink();
    const fwd = new SinkForwarder([sink], { maxQueue: 3, logger: captureLogger() });
    fwd.enqueue(records(1, 1));
    await new Promise((r) => setTimeout(r, 5));
    fwd.enqueue(records(2, 10));
    sink.release();
    await fwd.flush();
    expect(sink.got).toEqual([1, 8, 9, 10]);
    expect(fwd.stats()[0]).toMatchObject({ delivered: 4, dropped: 6 });
    await fwd.close();
  });

  it("keeps one failing sink from holding up another, and close() gives up after its timeout", async () => {
    const good = gatedSink();
    good.release();
    const failing: AuditSink = {
      name: "down",
      deliver: () => Promise.reject(new Error("connection refused")),
      close: async () => {},
    };
    const logger = captureLogger();
    const fwd = new SinkForwarder([failing, good], { retryBaseMs: 5, retryMaxMs: 20, logger });
    fwd.enqueue(records(1, 3));
    await expect.poll(() => good.got).toEqual([1, 2, 3]);
    const started = Date.now();
    await fwd.close(100);
    expect(Date.now() - started).toBeLessThan(1000);
    const [down] = fwd.stats();
    expect(down).toMatchObject({ delivered: 0, dropped: 3, lastError: "connection refused" });
    expect(down!.retries).toBeGreaterThan(1);
    expect(logger.warnings.filter((w) => w.includes("retrying"))).toHaveLength(1); // one warning per episode
  });

  it("a permanent error drops only that batch", async () => {
    const got: number[] = [];
    const sink: AuditSink = {
      name: "picky",
      async deliver(batch) {
        if (batch.some((r) => r.seq === 2)) throw new PermanentSinkError("400 bad record");
        got.push(...batch.map((r) => r.seq));
      },
      close: async () => {},
    };
    const fwd = new SinkForwarder([sink], { maxBatch: 1, logger: captureLogger() });
    fwd.enqueue(records(1, 3));
    await fwd.flush();
    expect(got).toEqual([1, 3]);
    expect(fwd.stats()[0]).toMatchObject({ rejected: 1, delivered: 2 });
  });
});
