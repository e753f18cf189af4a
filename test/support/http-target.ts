/**
 * A small HTTP service as a gateway target in tests, in the test's own process: it records every request it got,
 * so a test asserts what really reached the target (the credential the gateway holds was injected, the client's
 * bearer token was not forwarded, a refused request never arrived), and it answers the shapes an HTTP adapter must
 * relay faithfully:
 *
 *   /echo        any method: JSON {method, path, query, headers, body, bodyBytes} of the request as received
 *   /users       JSON with nested personal data (USERS below): e-mail, password, api_key, card number, JWT
 *   /stream      ?n=5&interval=100: chunked text, "line 1\n" at once, then one more line every interval ms
 *   /sse         ?n=3&interval=100: text/event-stream, n events (id, event, data lines, a comment), then ends
 *   /upload      any method with a body (chunked or not): JSON {bytes, sha256} of the body
 *   /status/CODE answers that status with a short text body
 *   /ws          WebSocket (ws): echoes every text and binary message as it came
 *   anything else: 200 "ok METHOD URL\n" (text), like the nginx test server
 *
 * With requireBearer / requireBasic / requireHeader set, a request (a WebSocket upgrade too) that lacks any of them
 * is answered 401 and recorded with `authorized: false`. No vitest imports, so bench/ can use it too.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

export interface HttpTargetOptions {
  /** Port on 127.0.0.1; default 0 (any free port). */
  port?: number;
  /** Require `Authorization: Bearer <this>`. */
  requireBearer?: string;
  /** Require `Authorization: Basic <base64 user:password>`. */
  requireBasic?: { user: string; password: string };
  /** Require this header with exactly this value (name is case-insensitive). */
  requireHeader?: { name: string; value: string };
  /** How many body bytes each record keeps in `body` (bodyBytes and bodySha256 always cover all); default 1 MiB. */
  maxRecordedBody?: number;
}

/** One request as the target received it. Pushed when its head arrives; body fields grow as the body does. */
export interface RecordedRequest {
  method: string;
  /** The request target as sent (path and query). */
  url: string;
  /** `url` without its query. */
  path: string;
  /** Node's parsed headers (names lower-cased, repeated values joined). */
  headers: IncomingHttpHeaders;
  /** Names and values exactly as received, in order: [name, value, name, value, ...]. */
  rawHeaders: string[];
  /** The first maxRecordedBody bytes of the body. */
  body: Buffer;
  /** Body bytes received so far. */
  bodyBytes: number;
  /** SHA-256 (hex) of the whole body, once it has ended. */
  bodySha256?: string;
  /** True once the whole body has arrived. */
  complete: boolean;
  /** False when a required credential was missing (it was answered 401). */
  authorized: boolean;
  /** A WebSocket upgrade request. */
  upgrade: boolean;
  /** Date.now() when the head arrived. */
  at: number;
}

export interface HttpTarget {
  /** http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  port: number;
  /** Every request received, in arrival order (empty it with `requests.length = 0`). */
  requests: RecordedRequest[];
  close(): Promise<void>;
}

// ---------------------------------------------------------------- /users fixture

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** A well-formed HS256 JWT (signed with a fixed test secret), for the jwt detector. */
function fixtureJwt(sub: string): string {
  const head = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = base64url(JSON.stringify({ sub, iat: 1767225600, exp: 4102444800, scope: "read write" }));
  const sig = createHmac("sha256", "gatehouse-http-target").update(`${head}.${body}`).digest();
  return `${head}.${body}.${base64url(sig)}`;
}

/**
 * What /users answers: nested objects with values that masking must catch by JSON path (`password`, `api_key`,
 * `*.email`) and by content (the card numbers pass the Luhn check, the JWTs are well-formed, one api_key has the
 * shape of an AWS access key id).
 */
export const USERS = {
  users: [
    {
      id: 1,
      name: "Ada Lovelace",
      contact: { email: "ada@example.com", phone: "+44 20 7946 0001" },
      password: "correct-horse-battery-staple",
      api_key: "ghk_live_4f6b2a9c1d8e7f3a5b0c2d4e6f8a1b3c",
      billing: { card: { number: "4111 1111 1111 1111", expiry: "12/29" }, country: "GB" },
      session: { token: fixtureJwt("ada") },
    },
    {
      id: 2,
      name: "Grace Hopper",
      contact: { email: "grace.hopper@example.org", phone: "+1 202 555 0142" },
      password: "cobol-1959!",
      api_key: "AKIAIOSFODNN7EXAMPLE",
      billing: { card: { number: "5555555555554444", expiry: "01/30" }, country: "US" },
      session: { token: fixtureJwt("grace") },
    },
  ],
  meta: { count: 2, note: "no secret here", contact: "support@example.net" },
};

// ---------------------------------------------------------------- the server

function headerMatches(given: string | string[] | undefined, wanted: string): boolean {
  if (typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(wanted);
  return a.length === b.length && timingSafeEqual(a, b);
}

function authorized(headers: IncomingHttpHeaders, o: HttpTargetOptions): boolean {
  if (o.requireBearer !== undefined && !headerMatches(headers.authorization, `Bearer ${o.requireBearer}`)) return false;
  if (o.requireBasic !== undefined) {
    const basic = Buffer.from(`${o.requireBasic.user}:${o.requireBasic.password}`).toString("base64");
    if (!headerMatches(headers.authorization, `Basic ${basic}`)) return false;
  }
  if (
    o.requireHeader !== undefined &&
    !headerMatches(headers[o.requireHeader.name.toLowerCase()], o.requireHeader.value)
  )
    return false;
  return true;
}

function challenge(o: HttpTargetOptions): OutgoingHttpHeaders {
  if (o.requireBearer !== undefined) return { "www-authenticate": 'Bearer realm="http-target"' };
  if (o.requireBasic !== undefined) return { "www-authenticate": 'Basic realm="http-target"' };
  return {};
}

function record(req: IncomingMessage, ok: boolean, upgrade: boolean): RecordedRequest {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  return {
    method: req.method ?? "",
    url,
    path: q < 0 ? url : url.slice(0, q),
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    body: Buffer.alloc(0),
    bodyBytes: 0,
    complete: false,
    authorized: ok,
    upgrade,
    at: Date.now(),
  };
}

function json(res: ServerResponse, status: number, value: unknown, extra: OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function intParam(query: URLSearchParams, name: string, fallback: number, max: number): number {
  const v = Number(query.get(name) ?? fallback);
  return Number.isInteger(v) && v >= 0 ? Math.min(v, max) : fallback;
}

/** Calls write(i) for i = 1..n, the first at once and then every `interval` ms; stops when the client goes away. */
function paced(res: ServerResponse, n: number, interval: number, write: (i: number) => void): void {
  let i = 0;
  let timer: NodeJS.Timeout | undefined;
  const next = () => {
    if (res.destroyed) return;
    i += 1;
    if (i > n) {
      res.end();
      return;
    }
    write(i);
    timer = setTimeout(next, interval);
  };
  res.on("close", () => clearTimeout(timer));
  next();
}

function queryObject(query: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of new Set(query.keys())) {
    const all = query.getAll(key);
    out[key] = all.length === 1 ? all[0]! : all;
  }
  return out;
}

export async function startHttpTarget(opts: HttpTargetOptions = {}): Promise<HttpTarget> {
  const maxBody = opts.maxRecordedBody ?? 1024 * 1024;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const wss = new WebSocketServer({ noServer: true });

  /** Receives the whole body into `r`, then resolves with it. */
  const receive = (req: IncomingMessage, r: RecordedRequest): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const hash = createHash("sha256");
      const kept: Buffer[] = [];
      let keptBytes = 0;
      req.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        r.bodyBytes += chunk.length;
        if (keptBytes < maxBody) {
          const part = chunk.subarray(0, maxBody - keptBytes);
          kept.push(part);
          keptBytes += part.length;
          r.body = Buffer.concat(kept);
        }
      });
      req.on("end", () => {
        r.bodySha256 = hash.digest("hex");
        r.complete = true;
        resolve(r.body);
      });
      req.on("error", reject);
    });

  const server = createServer((req, res) => {
    const ok = authorized(req.headers, opts);
    const r = record(req, ok, false);
    requests.push(r);
    const body = receive(req, r);
    body.catch(() => undefined); // an aborted request: nothing to answer
    if (!ok) {
      json(res, 401, { error: "unauthorized" }, challenge(opts));
      return;
    }
    const url = new URL(r.url, "http://target");
    const query = url.searchParams;
    const path = url.pathname;

    if (path === "/echo") {
      void body.then((b) =>
        json(res, 200, {
          method: r.method,
          path,
          query: queryObject(query),
          headers: req.headers,
          body: b.toString("utf8"),
          bodyBytes: r.bodyBytes,
        }),
      );
    } else if (path === "/users") {
      json(res, 200, USERS);
    } else if (path === "/stream") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" });
      res.flushHeaders();
      paced(res, intParam(query, "n", 5, 10_000), intParam(query, "interval", 100, 60_000), (i) =>
        res.write(`line ${i}\n`),
      );
    } else if (path === "/sse") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(": http-target events\nretry: 1000\n\n");
      paced(res, intParam(query, "n", 3, 10_000), intParam(query, "interval", 100, 60_000), (i) =>
        res.write(`id: ${i}\nevent: tick\ndata: {"n":${i}}\ndata: line two of event ${i}\n\n`),
      );
    } else if (path === "/upload") {
      void body.then(() => json(res, 200, { bytes: r.bodyBytes, sha256: r.bodySha256 }));
    } else if (/^\/status\/\d{3}$/.test(path)) {
      const status = Number(path.slice("/status/".length));
      if (status < 200) text(res, 400, "status must be 200-599\n");
      else text(res, status, `status ${status}\n`);
    } else {
      text(res, 200, `ok ${r.method} ${r.url}\n`);
    }
  });

  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const ok = authorized(req.headers, opts);
    const r = record(req, ok, true);
    r.complete = true;
    requests.push(r);
    const refuse = (status: string, headers: OutgoingHttpHeaders = {}) => {
      const lines = [`HTTP/1.1 ${status}`, "Connection: close", "Content-Length: 0"];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${String(v)}`);
      socket.end(`${lines.join("\r\n")}\r\n\r\n`);
    };
    socket.on("error", () => socket.destroy());
    if (!ok) return refuse("401 Unauthorized", challenge(opts));
    if (r.path !== "/ws") return refuse("404 Not Found");
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on("error", () => ws.terminate());
    });
  });

  server.listen(opts.port ?? 0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
