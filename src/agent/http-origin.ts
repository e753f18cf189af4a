/**
 * The agent as the HTTP origin of a `secrets: agent` http or kubernetes connection. The gateway speaks plain HTTP/1.1
 * on the tunnel stream (its own TLS would end at the agent, and it holds no credential to add); the agent makes each
 * request to its configured target, over TLS when the target is https, with the credential it holds added and Host
 * replaced with the target's, and relays the response. Everything the target sends back (headers, bodies, the bytes
 * of an upgraded connection such as `kubectl exec`'s WebSocket) is scrubbed of the credential's values before it
 * crosses the tunnel, with the same scrubber the gateway uses for credentials it holds. So the credential never
 * reaches the gateway, not even when a target echoes it.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import https from "node:https";
import { pipeline, Transform, type Duplex } from "node:stream";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { connectionNamed, dialTcp, endToEndHeaders, errorText, HOP_BY_HOP } from "../core/adapter/index.js";
import { HeldSecrets } from "../core/masking/index.js";
import type { HttpCredential } from "./credentials.js";

/** Where the agent sends a connection's requests (agent.yaml's `target` with a `url`). */
export interface OriginTarget {
  host: string;
  port: number;
  url: string;
  ca?: string | undefined;
  insecure_skip_tls_verify: boolean;
}

/** How long the agent waits for its own dial to the target of an upgrade. */
const DIAL_TIMEOUT_MS = 10_000;

export class HttpOrigin {
  readonly #held: HeldSecrets;
  readonly #secure: boolean;
  readonly #hostHeader: string;
  readonly #servername: string | undefined;
  readonly #pool: http.Agent;

  constructor(
    readonly connection: string,
    private readonly target: OriginTarget,
    private readonly credential: HttpCredential,
  ) {
    this.#held = new HeldSecrets(credential.secrets);
    const url = new URL(target.url);
    this.#secure = url.protocol === "https:";
    this.#hostHeader = url.host;
    this.#servername = /^[\d.]+$|:/.test(target.host) ? undefined : target.host;
    this.#pool = this.#secure
      ? new https.Agent({ keepAlive: true, maxFreeSockets: 16, ...this.#tlsOptions() })
      : new http.Agent({ keepAlive: true, maxFreeSockets: 16 });
  }

  /** Serves one tunnel stream (already answered 200) as an HTTP/1.1 connection until either end closes it. */
  serve(stream: Duplex): void {
    const server = http.createServer((req, res) => this.#request(req, res));
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    // a malformed request from the gateway: nothing to answer it with but the end of the stream
    server.on("clientError", (_err, socket: Duplex) => socket.destroy());
    server.emit("connection", socketLike(stream));
  }

  close(): void {
    this.#pool.destroy();
  }

  #tlsOptions() {
    const c = this.credential;
    return {
      ...(this.#servername ? { servername: this.#servername } : {}),
      ...(this.target.ca ? { ca: this.target.ca } : {}),
      ...(c.clientCert && c.clientKey ? { cert: c.clientCert, key: c.clientKey } : {}),
      rejectUnauthorized: !this.target.insecure_skip_tls_verify,
    };
  }

  /** The headers the target gets: the gateway's, minus hop-by-hop ones (unless `upgrade`), plus the credential. */
  #headers(incoming: IncomingHttpHeaders, upgrade: boolean): OutgoingHttpHeaders {
    const named = connectionNamed(incoming);
    const out: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(incoming)) {
      if (value === undefined || name === "host" || name === "authorization" || name === "proxy-authorization")
        continue;
      if (!upgrade && (HOP_BY_HOP.has(name) || named.has(name))) continue;
      out[name] = value;
    }
    out.host = this.#hostHeader;
    for (const [name, value] of Object.entries(this.credential.headers)) out[name] = value;
    return out;
  }

  #request(req: IncomingMessage, res: http.ServerResponse): void {
    const options = {
      agent: this.#pool,
      host: this.target.host,
      port: this.target.port,
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: this.#headers(req.headers, false),
      setHost: false,
    };
    const out = this.#secure ? https.request(options) : http.request(options);
    const fail = (err: Error) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = `agent: the request to ${this.#hostHeader} failed: ${this.#held.scrub(Buffer.from(errorText(err))).toString()}`;
      res.writeHead(502, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    out.once("error", fail);
    req.once("error", () => out.destroy());
    res.once("close", () => {
      if (!res.writableFinished) out.destroy();
    });
    out.once("response", (upstream) => {
      const headers = endToEndHeaders(upstream.headers);
      // scrubbing can change the body's length: the gateway reads it to its end instead
      if (!this.#held.empty && bodyMayFollow(req.method, upstream.statusCode)) delete headers["content-length"];
      res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, this.#held.scrubHeaders(headers));
      pipeline(upstream, this.#scrubbing(), res, () => undefined);
    });
    req.pipe(out);
  }

  /** An upgrade (a WebSocket, kubectl's exec and port-forward): the request written whole, then bytes both ways. */
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const headers = this.#headers(req.headers, true);
    let text = `${req.method ?? "GET"} ${req.url ?? "/"} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      for (const v of Array.isArray(value) ? value : [String(value)]) text += `${name}: ${v}\r\n`;
    }
    text += "\r\n";
    this.#dial().then(
      (target) => {
        if (socket.destroyed) return target.destroy();
        target.write(text);
        if (head.length > 0) target.write(head);
        pipeline(target, this.#scrubbing(), socket, () => target.destroy());
        pipeline(socket, target, () => socket.destroy());
      },
      (err: unknown) => {
        const body = `agent: the upgrade to ${this.#hostHeader} failed: ${errorText(err)}`;
        socket.end(
          `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
      },
    );
  }

  async #dial(): Promise<Duplex> {
    const raw = await dialTcp({ host: this.target.host, port: this.target.port }, DIAL_TIMEOUT_MS);
    if (!this.#secure) return raw;
    return new Promise<TLSSocket>((resolve, reject) => {
      const tls = tlsConnect({ socket: raw, ALPNProtocols: ["http/1.1"], ...this.#tlsOptions() });
      tls.once("secureConnect", () => {
        tls.off("error", reject);
        resolve(tls);
      });
      tls.once("error", (err) => {
        raw.destroy();
        reject(err);
      });
    });
  }

  /** A stream that scrubs the held credential's values from what passes through it. */
  #scrubbing(): Transform {
    const transform: Transform = new Transform({
      transform(chunk: Buffer, _enc, done) {
        scrubber.write(chunk);
        done();
      },
      flush(done) {
        scrubber.end();
        done();
      },
    });
    const scrubber = this.#held.stream((bytes) => transform.push(bytes));
    return transform;
  }
}

function bodyMayFollow(method: string | undefined, status: number | undefined): boolean {
  return method !== "HEAD" && status !== 204 && status !== 304;
}

/**
 * A tunnel stream as node:http's server handles a connection: it calls socket methods an HTTP/2 stream lacks
 * (timeouts, Nagle, keep-alive, holding the event loop). Those are the tunnel socket's business, so here they do
 * nothing.
 */
function socketLike(stream: Duplex): Duplex {
  type Shims = "setTimeout" | "setNoDelay" | "setKeepAlive" | "ref" | "unref" | "destroySoon";
  const s = stream as Duplex & Partial<Record<Shims, (...args: unknown[]) => unknown>>;
  // an HTTP/2 stream has its own setTimeout (idle timeout of the stream): the server's keep-alive timer must not
  // end a stream the gateway's pool keeps
  s.setTimeout = () => s;
  s.setNoDelay ??= () => s;
  s.setKeepAlive ??= () => s;
  s.ref ??= () => s;
  s.unref ??= () => s;
  s.destroySoon ??= () => s.end();
  return s;
}
