import {
  Agent,
  request as httpRequest,
  type ClientRequest,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http";
import { connect as tlsConnect } from "node:tls";
import type { Duplex } from "node:stream";
import { endToEndHeaders, type RouteEvidence, type TargetConnector } from "../../core/adapter/index.js";
import { HeldSecrets } from "../../core/masking/index.js";
import type { HttpFamilyConnection } from "./router.js";

/** Where a connection's requests go, and what the gateway adds to each (the held credential). */
export interface TargetSpec {
  url: URL;
  /** The credential values the gateway holds for this target, scrubbed from whatever the target sends back. */
  secrets: string[];
  /** Headers the gateway sets on every request (the held credential among them). */
  headers: Record<string, string>;
  tls: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined; rejectUnauthorized: boolean };
  /**
   * The connection's credentials are held by its agent (`secrets: agent`): the agent is the HTTP origin, so the
   * gateway speaks plain HTTP on the stream whatever the URL's scheme.
   */
  viaOrigin?: boolean;
}

export function targetSpec(c: HttpFamilyConnection): TargetSpec {
  const t = c.target;
  const headers: Record<string, string> = {};
  let base: string;
  if (c.type === "kubernetes") {
    base = c.target.server;
    if (c.target.token !== undefined) headers.authorization = `Bearer ${c.target.token}`;
  } else {
    base = c.target.url;
    for (const [k, v] of Object.entries(c.target.headers ?? {})) headers[k.toLowerCase()] = v;
    if (c.target.bearer !== undefined) headers.authorization = `Bearer ${c.target.bearer}`;
    if (c.target.basic !== undefined) {
      const { user, password } = c.target.basic;
      headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    }
  }
  // secrets: agent: the agent adds the credential and makes the target's TLS; the gateway holds neither (the config
  // refuses them in the target), and speaks plain HTTP to the agent over the tunnel
  if (c.secrets === "agent")
    return { url: new URL(base), secrets: [], headers: {}, tls: { rejectUnauthorized: true }, viaOrigin: true };
  const secrets = Object.values(headers).flatMap((v) => [v, v.replace(/^(?:Bearer|Basic) +/i, "")]);
  if (c.type === "http" && c.target.basic) secrets.push(c.target.basic.password);
  if (t.client_key) secrets.push(t.client_key);
  return {
    url: new URL(base),
    secrets,
    headers,
    tls: { ca: t.ca, cert: t.client_cert, key: t.client_key, rejectUnauthorized: !t.insecure_skip_tls_verify },
  };
}

/**
 * The headers the target gets: the client's, minus hop-by-hop ones, the headers `Connection` names, the client's
 * bearer token (Authorization) and Host; plus the held credential and headers the connection configures.
 */
export function forwardedHeaders(incoming: IncomingHttpHeaders, spec: TargetSpec, host: string): OutgoingHttpHeaders {
  const out = endToEndHeaders(incoming);
  delete out.authorization;
  delete out.host;
  out.host = host;
  for (const [name, value] of Object.entries(spec.headers)) out[name] = value;
  return out;
}

/** Response headers for the client: the target's, minus hop-by-hop ones. */
export const returnedHeaders = endToEndHeaders;

/**
 * A target stream as Node's keep-alive pool can hold it. The pool treats every connection as a net.Socket: when a
 * response ends it calls setKeepAlive and unref, and ref when it reuses the connection. A stream through a network
 * agent is an HTTP/2 stream, which has none of them: every keep-alive response of a plain-HTTP target reached
 * through an agent threw from the pool's 'free' handler (an uncaught TypeError, "socket.setKeepAlive is not a
 * function", which ends a gateway process), and the stream never went back to the pool, so each request opened
 * another. TCP keep-alive and holding the event loop are the tunnel socket's business (it has heartbeats), so for
 * such a stream they do nothing. A TLS socket made over the stream (https targets) is a net.Socket already.
 */
function poolable(stream: Duplex): Duplex {
  const s = stream as Duplex & Partial<Record<"setKeepAlive" | "ref" | "unref", () => unknown>>;
  s.setKeepAlive ??= () => s;
  s.ref ??= () => s;
  s.unref ??= () => s;
  return s;
}

/**
 * One connection's way to its target: byte streams from the target connector (never a direct dial), with TLS to an
 * https target made over that stream, pooled per session (see `pool`).
 */
export class TargetClient {
  readonly spec: TargetSpec;
  readonly held: HeldSecrets;
  readonly #port: number;
  readonly #host: string;
  readonly #open: (session: RouteEvidence | undefined) => Promise<Duplex>;

  constructor(connection: HttpFamilyConnection, connector: TargetConnector) {
    this.spec = targetSpec(connection);
    this.held = new HeldSecrets(this.spec.secrets);
    const url = this.spec.url;
    const secure = url.protocol === "https:";
    const tlsHere = secure && !this.spec.viaOrigin;
    this.#host = url.hostname.replace(/^\[|\]$/g, "");
    this.#port = url.port ? Number(url.port) : secure ? 443 : 80;
    const endpoint = { host: this.#host, port: this.#port };
    const tls = this.spec.tls;
    const servername = /^[\d.]+$|:/.test(this.#host) ? undefined : this.#host;
    this.#open = async (session) => {
      const raw = await connector.open(connection, endpoint, "session", session ? { session } : {});
      if (!tlsHere) return poolable(raw);
      return tlsConnect({
        socket: raw,
        ...(servername ? { servername } : {}),
        ...(tls.ca ? { ca: tls.ca } : {}),
        ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
        rejectUnauthorized: tls.rejectUnauthorized,
        ALPNProtocols: ["http/1.1"],
      });
    };
  }

  /** A fresh byte stream to the target (TLS made when https), for upgrades that leave the pool. */
  openStream(session?: RouteEvidence): Promise<Duplex> {
    return this.#open(session);
  }

  /**
   * A keep-alive pool for one session. Its sockets serve that session only: the session's evidence names the route
   * each one took (an agent records it as the stream opens), and they close when the session does (destroy()).
   */
  pool(session: RouteEvidence): Agent {
    const agent = new Agent({ keepAlive: true, maxFreeSockets: 16, scheduling: "lifo" });
    // the async form: Node's agent accepts a callback instead of a returned socket
    (agent as unknown as { createConnection: unknown }).createConnection = (
      _opts: unknown,
      done: (err: Error | null, socket?: Duplex) => void,
    ) => {
      this.#open(session)
        .then((s) => done(null, s))
        .catch((err: unknown) => done(err instanceof Error ? err : new Error(String(err))));
      return undefined;
    };
    return agent;
  }

  /** The Host header the target expects. */
  get host(): string {
    return this.spec.url.host;
  }

  /** The target's path for a request path: the connection URL's own path prefix, then the request's. */
  path(requestPath: string): string {
    const base = this.spec.url.pathname.replace(/\/+$/, "");
    return `${base}${requestPath}`;
  }

  request(method: string, path: string, headers: OutgoingHttpHeaders, pool: Agent): ClientRequest {
    return httpRequest({
      agent: pool,
      host: this.#host,
      port: this.#port,
      method,
      path: this.path(path),
      headers,
      setHost: false,
    });
  }
}
