/**
 * The network-resident agent: it dials the gateway (nothing listens on the agent's side), proves who it is, and
 * then relays the target streams the gateway opens, each only to the target its own config names for that
 * connection. It holds no policy, masks nothing and records nothing: all of that stays at the gateway.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { dialTcp, errorText } from "../core/adapter/index.js";
import type { AgentConfig } from "./config.js";
import { AgentCredentials } from "./credentials.js";
import { buffersOnly } from "./buffer-writes.js";
import { parseJson, readBody } from "./h2-body.js";
import { HttpOrigin } from "./http-origin.js";
import {
  CREDENTIAL_PATH,
  HELLO_PATH,
  MAX_CREDENTIAL_BYTES,
  MAX_HANDSHAKE_BYTES,
  publicKeyPin,
  STREAM_HEADERS,
  TUNNEL_ALPN,
  TUNNEL_VERSION,
  WELCOME_PATH,
  welcomeSchema,
  type Welcome,
} from "./wire.js";

export interface AgentOptions {
  version: string;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

type Accepted = Extract<Welcome, { ok: true }>;

/** How long the agent waits for its own dial to a target. */
const TARGET_DIAL_TIMEOUT_MS = 10_000;
/** Flow-control windows, as the gateway's (endpoint.ts says why). */
const STREAM_WINDOW = 1024 * 1024;
const SESSION_WINDOW = 2 ** 31 - 1;

/**
 * Events: `connected` (welcome accepted; the argument is the welcome), `refused` (the gateway's reason),
 * `disconnected` (the reason), `stream` (connection name) for each target stream opened.
 */
export class GatehouseAgent extends EventEmitter {
  readonly instance = `${process.pid}-${randomBytes(4).toString("hex")}`;
  readonly #targets: Map<string, { host: string; port: number }>;
  readonly #credentials: AgentCredentials;
  /** The HTTP origins of connections with http credentials (`gatehouse-origin: http` streams). */
  readonly #origins = new Map<string, HttpOrigin>();
  readonly #log: (msg: string, fields?: Record<string, unknown>) => void;
  #stopped = false;
  #session: ServerHttp2Session | undefined;
  #socket: TLSSocket | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #openStreams = 0;

  constructor(
    readonly config: AgentConfig,
    private readonly options: AgentOptions,
  ) {
    super();
    this.#targets = new Map(config.connections.map((c) => [c.name, c.target]));
    this.#credentials = new AgentCredentials(config);
    for (const c of config.connections) {
      const credential = this.#credentials.http(c.name);
      if (credential && "url" in c.target) this.#origins.set(c.name, new HttpOrigin(c.name, c.target, credential));
    }
    this.#log = options.log ?? ((msg, fields) => console.error(`gatehouse agent: ${msg}`, fields ?? ""));
  }

  get openStreams(): number {
    return this.#openStreams;
  }

  /** Runs until stop(): connect, serve, and after any loss reconnect with exponential backoff and full jitter. */
  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    this.#session?.destroy();
    this.#socket?.destroy();
    for (const origin of this.#origins.values()) origin.close();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const outcome = await this.#connectOnce().catch((err: unknown) => {
        this.#log("tunnel failed", { error: errorText(err) });
        return "lost" as const;
      });
      if (this.#stopped) break;
      failures = outcome === "served" ? 0 : failures + 1;
      const { min, max } = this.config.reconnect;
      const ceiling = Math.min(max, min * 2 ** Math.min(failures, 20));
      // full jitter: agents that lost one gateway together do not all return in the same instant
      const delay = Math.max(min / 2, Math.random() * ceiling);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One tunnel from dial to loss: "served" when the gateway accepted it, "lost"/"refused" otherwise. */
  #connectOnce(): Promise<"served" | "lost" | "refused"> {
    const gw = this.config.gateway;
    return new Promise((resolve) => {
      let accepted = false;
      let refused = false;
      let settled = false;
      const finish = (reason: string) => {
        if (settled) return;
        settled = true;
        clearInterval(heartbeat);
        this.#session?.destroy();
        socket.destroy();
        if (accepted) {
          this.#log(`disconnected from the gateway: ${reason}`);
          this.emit("disconnected", reason);
        }
        resolve(accepted ? "served" : refused ? "refused" : "lost");
      };
      const socket = tlsConnect({
        host: gw.address.host,
        port: gw.address.port,
        ALPNProtocols: [TUNNEL_ALPN],
        minVersion: "TLSv1.2",
        ...(gw.ca ? { ca: gw.ca, rejectUnauthorized: true } : { rejectUnauthorized: false }),
        ...(gw.server_name ? { servername: gw.server_name } : {}),
      });
      this.#socket = socket;
      let heartbeat: NodeJS.Timeout | undefined;
      socket.once("error", (err) => finish(err.message));
      socket.once("close", () => finish("the connection closed"));
      socket.once("secureConnect", () => {
        if (gw.pin) {
          // pinned: the chain is not checked, the key is (and nothing is sent before it matched)
          const key = socket.getPeerX509Certificate()?.publicKey.export({ type: "spki", format: "der" });
          const got = key ? publicKeyPin(key) : "none";
          if (got !== gw.pin) {
            finish(`the gateway's key ${got} does not match the configured pin`);
            this.#log(
              `refusing the gateway at ${gw.address.host}:${gw.address.port}: its key ${got} does not match the pin`,
            );
            return;
          }
        }
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 30_000);
        const session = http2.performServerHandshake(socket, { settings: { initialWindowSize: STREAM_WINDOW } });
        this.#session = session;
        session.setLocalWindowSize(SESSION_WINDOW);
        session.on("error", (err) => finish(err.message));
        session.once("close", () => finish("the gateway closed the tunnel"));
        let awaiting = false;
        const beat = (ms: number) => {
          clearInterval(heartbeat);
          heartbeat = setInterval(() => {
            if (awaiting) return finish(`no heartbeat answer within ${ms} ms`);
            awaiting = true;
            session.ping((err) => {
              if (!err) awaiting = false;
            });
          }, ms);
          heartbeat.unref();
        };
        beat(this.config.heartbeat);
        let welcome: Accepted | undefined;
        session.on("stream", (stream, headers) => {
          const path = headers[":path"];
          const method = headers[":method"];
          if (method === "GET" && path === HELLO_PATH) return this.#hello(stream);
          if (method === "POST" && path === WELCOME_PATH) {
            readBody(stream, MAX_HANDSHAKE_BYTES, 10_000)
              .then((body) => {
                const parsed = welcomeSchema.safeParse(parseJson(body, "welcome"));
                if (!parsed.success) throw new Error("malformed welcome");
                stream.respond({ ":status": 200 });
                stream.end();
                const w = parsed.data;
                if (!w.ok) {
                  refused = true;
                  this.#log(`the gateway refused this agent: ${w.error}`);
                  this.emit("refused", w.error);
                  return;
                }
                welcome = w;
                accepted = true;
                beat(w.heartbeat_ms);
                for (const r of w.refused)
                  this.#log(`the gateway will not use this agent for ${r.connection}: ${r.reason}`);
                this.#log(`connected to the gateway ${gw.address.host}:${gw.address.port}`, {
                  gateway_version: w.gateway_version,
                  connections: w.connections,
                });
                this.emit("connected", w);
              })
              .catch((err: unknown) => finish(`bad welcome: ${errorText(err)}`));
            return;
          }
          if (method === "CONNECT") return this.#relay(stream, headers, welcome);
          if (method === "POST" && path === CREDENTIAL_PATH) return this.#credential(stream, welcome);
          stream.respond({ ":status": 404 });
          stream.end();
        });
      });
    });
  }

  #hello(stream: ServerHttp2Stream): void {
    stream.respond({ ":status": 200, "content-type": "application/json" });
    stream.end(
      JSON.stringify({
        tunnel: TUNNEL_VERSION,
        name: this.config.name,
        instance: this.instance,
        version: this.options.version,
        token: this.config.token,
        connections: this.config.connections.map((c) => c.name),
        // a credential capability only for the kinds held: a gateway does not route a login here it cannot do
        capabilities: ["tcp", ...this.#credentials.capabilities()],
        credentials: this.#credentials.kinds(),
        http_credentials: this.#credentials.httpConnections(),
      }),
    );
  }

  /**
   * One credential step for a connection with `secrets: agent` (credentials.ts). The answer is always JSON (a
   * refusal says why); the log names the connection, the step and a refusal's reason, never a value.
   */
  #credential(stream: ServerHttp2Stream, welcome: Accepted | undefined): void {
    const reply = (status: number, answer: object) => {
      try {
        if (stream.destroyed || stream.headersSent) return;
        stream.respond({ ":status": status, "content-type": "application/json" });
        stream.end(JSON.stringify(answer));
      } catch {
        // the gateway gave up on the request meanwhile (the tunnel or the stream closed): nobody to answer
      }
    };
    readBody(stream, MAX_CREDENTIAL_BYTES, 10_000)
      .then(async (body) => {
        const request = parseJson(body, "credential request");
        const answer = await this.#credentials.answer(request, welcome?.connections ?? []);
        if (!answer.ok) {
          const { connection, op } = (request ?? {}) as { connection?: unknown; op?: unknown };
          this.#log(`refused a credential request: ${answer.error}`, {
            connection: String(connection).slice(0, 128),
            op: String(op).slice(0, 64),
          });
        }
        reply(200, answer);
      })
      .catch((err: unknown) => {
        this.#log(`a credential request failed: ${errorText(err)}`);
        reply(400, { ok: false, error: errorText(err) });
      });
  }

  /** One target stream: checked against this agent's own config, dialled, then relayed both ways. */
  #relay(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, welcome: Accepted | undefined): void {
    const connection = String(headers[STREAM_HEADERS.connection] ?? "");
    const authority = String(headers[":authority"] ?? "");
    const refuse = (status: number, why: string) => {
      this.#log(`refused a stream: ${why}`, { connection, purpose: headers[STREAM_HEADERS.purpose] });
      stream.respond({ ":status": status, [STREAM_HEADERS.error]: why });
      stream.end();
    };
    if (!welcome) return refuse(403, "this agent has not been admitted yet");
    const target = this.#targets.get(connection);
    if (!target || !welcome.connections.includes(connection))
      return refuse(403, `agent ${this.config.name} does not serve connection "${connection}"`);
    const expected = `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
    if (authority !== expected)
      return refuse(403, `agent ${this.config.name} reaches "${connection}" at ${expected}, not ${authority}`);
    const origin = headers[STREAM_HEADERS.origin];
    if (origin !== undefined) {
      const server = this.#origins.get(connection);
      if (origin !== "http") return refuse(400, `unknown origin kind ${JSON.stringify(String(origin).slice(0, 32))}`);
      if (!server) return refuse(403, `agent ${this.config.name} holds no http credentials for "${connection}"`);
      this.#openStreams++;
      stream.once("close", () => this.#openStreams--);
      stream.respond({ ":status": 200 });
      this.emit("stream", connection);
      server.serve(buffersOnly(stream));
      return;
    }
    this.#openStreams++;
    stream.once("close", () => this.#openStreams--);
    dialTcp(target, TARGET_DIAL_TIMEOUT_MS).then(
      (socket) => {
        if (stream.destroyed) return socket.destroy();
        stream.respond({ ":status": 200 });
        this.emit("stream", connection);
        // a target's FIN ends the stream (and the other way round); a reset on either side ends both
        stream.pipe(socket);
        socket.pipe(stream);
        socket.on("error", () => stream.close(http2.constants.NGHTTP2_CONNECT_ERROR));
        stream.on("error", () => socket.destroy());
        stream.once("close", () => socket.destroy());
      },
      (err: unknown) => {
        if (!stream.destroyed) refuse(502, `agent ${this.config.name}: ${errorText(err)}`);
      },
    );
  }
}
