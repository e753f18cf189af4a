/**
 * A bare HTTP reverse proxy on node:http: what any Node.js HTTP proxy costs before it does anything of its own
 * (parse the request, open or reuse an upstream connection, send the request on, parse the response, send it back).
 * bench/http-wrk.ts measures it next to the gateway as the ceiling a Node.js HTTP proxy reaches on this machine.
 *
 * Each request goes to the target with the same method, path and headers (hop-by-hop headers dropped, as a proxy
 * must), over a keep-alive Agent; bodies are streamed both ways (pipe), with Nagle off on every socket.
 *
 * As a module: `startHttpPassthroughProxy(host, port)` in the caller's process. As a program (what the bench uses,
 * so the proxy has its own event loop and process, and its CPU can be read from /proc):
 *
 *   node --import tsx bench/_http-passthrough-proxy.ts TARGET_HOST TARGET_PORT
 *
 * prints {"port": N} on stdout once listening on 127.0.0.1, and exits on SIGTERM/SIGINT or when stdin closes.
 */
import { once } from "node:events";
import { Agent, createServer, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import { runAsProxyProcess } from "./_proxy-process.js";

export interface HttpPassthroughProxy {
  port: number;
  close(): Promise<void>;
}

/** RFC 9110 section 7.6.1: headers for one hop only, never forwarded (plus the legacy proxy ones). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const listed = headers.connection?.split(",").map((h) => h.trim().toLowerCase()) ?? [];
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !listed.includes(name)) out[name] = value;
  }
  return out;
}

export async function startHttpPassthroughProxy(targetHost: string, targetPort: number): Promise<HttpPassthroughProxy> {
  const agent = new Agent({ keepAlive: true, maxFreeSockets: 1024 });
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const upstream = request(
      { host: targetHost, port: targetPort, method: req.method, path: req.url, headers: endToEnd(req.headers), agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
        answer.pipe(res);
        answer.on("error", () => res.destroy());
      },
    );
    upstream.on("socket", (s: Socket) => s.setNoDelay(true));
    upstream.on("error", () => {
      if (res.headersSent) res.destroy();
      else res.writeHead(502, { "content-length": 0 }).end();
    });
    req.on("error", () => upstream.destroy());
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.on("connection", (s: Socket) => {
    s.setNoDelay(true);
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    close: async () => {
      const closed = new Promise<void>((done) => server.close(() => done()));
      for (const s of sockets) s.destroy();
      agent.destroy();
      await closed;
    },
  };
}

await runAsProxyProcess(import.meta.url, startHttpPassthroughProxy);
