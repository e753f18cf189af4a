/**
 * The gateway's end of agent tunnels: the TLS listener agents dial, the handshake that admits or refuses them, and
 * each admitted tunnel as an `AgentInstance` the routing connector opens target streams through.
 */
import { createHash, timingSafeEqual, X509Certificate } from "node:crypto";
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { createServer, type TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import {
  errorText,
  loadTlsMaterial,
  TargetUnreachableError,
  type CredentialOracle,
  type StreamPurpose,
  type TargetEndpoint,
} from "../core/adapter/index.js";
import type { AuditEventInput } from "../core/evidence/audit-event.js";
import type { ConnectionConfig, GatehouseConfig, HostPort } from "../core/policy/schema.js";
import { buffersOnly } from "./buffer-writes.js";
import { parseJson, readBody } from "./h2-body.js";
import { tunnelOracle } from "./oracle.js";
import type { AgentInstance, AgentRegistry } from "./registry.js";
import {
  AGENT_CREDENTIALS,
  CAPABILITIES,
  credentialAnswerSchema,
  CREDENTIAL_PATH,
  HELLO_PATH,
  helloSchema,
  MAX_CREDENTIAL_BYTES,
  MAX_HANDSHAKE_BYTES,
  publicKeyPin,
  STREAM_HEADERS,
  TUNNEL_ALPN,
  TUNNEL_VERSION,
  WELCOME_PATH,
  type CredentialAnswer,
  type CredentialRequest,
  type Hello,
} from "./wire.js";

/** How long an agent has to answer hello, and to acknowledge welcome. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a target stream may take to open (the agent's own dial has a shorter timeout). */
const STREAM_OPEN_TIMEOUT_MS = 15_000;
/** How long an agent may take for one credential step (a SCRAM step at the agent's iteration cap takes ~1 s). */
const CREDENTIAL_TIMEOUT_MS = 15_000;
/**
 * HTTP/2 flow-control windows. A stream's window bounds what one stalled stream makes the gateway hold (1 MiB, far
 * above what a round trip needs for full speed; flow-control.test shows 40 stalled streams do not stall a 41st);
 * the tunnel's window is the largest HTTP/2 allows, so it never caps the streams' sum.
 */
const STREAM_WINDOW = 1024 * 1024;
const SESSION_WINDOW = 2 ** 31 - 1;

export interface AgentEndpointDeps {
  config: GatehouseConfig;
  listen: HostPort;
  registry: AgentRegistry;
  audit: (event: AuditEventInput) => Promise<unknown>;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  version: string;
}

export interface AgentEndpoint {
  /** The bound "host:port". */
  address: string;
  /** The listener key's pin, for agents' `gateway.pin`. */
  pin: string;
  /** Starts admitting agents; until then a tunnel waits before its handshake (the gateway's start is on record first). */
  admit(): void;
  close(): Promise<void>;
}

/** The pin of the agent listener's certificate key (generated into DATA/keys on first use, like the others). */
export function agentListenerPin(config: GatehouseConfig): string {
  const material = loadTlsMaterial(config.data, "agents", config.agents.tls);
  return publicKeyPin(new X509Certificate(material.cert).publicKey.export({ type: "spki", format: "der" }));
}

export async function startAgentEndpoint(deps: AgentEndpointDeps): Promise<AgentEndpoint> {
  const { config } = deps;
  const material = loadTlsMaterial(config.data, "agents", config.agents.tls);
  const pin = publicKeyPin(new X509Certificate(material.cert).publicKey.export({ type: "spki", format: "der" }));
  const tokens = config.agents.tokens.map((t) => ({ name: t.name, hash: Buffer.from(t.sha256, "hex") }));
  const tunnels = new Set<Tunnel>();
  let closing = false;
  let startAdmitting = () => undefined as void;
  const admitting = new Promise<void>((resolve) => (startAdmitting = resolve));
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    pending.add(p);
    p.finally(() => pending.delete(p)).catch(() => undefined);
  };

  const server = createServer(
    { cert: material.cert, key: material.key, ALPNProtocols: [TUNNEL_ALPN], minVersion: "TLSv1.2" },
    (socket) => {
      if (closing) {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
      const address = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
      if (socket.alpnProtocol !== TUNNEL_ALPN) {
        track(
          recordRefusal(
            deps,
            undefined,
            address,
            "the client did not offer the agent protocol (ALPN gatehouse-agent/1)",
          ),
        );
        socket.destroy();
        return;
      }
      const tunnel = new Tunnel(socket, address, deps, tunnels);
      track(
        admitting
          .then(() => tunnel.admit(tokens))
          .catch((err: unknown) => {
            deps.log(`agent tunnel from ${address} failed`, { error: errorText(err) });
            return tunnel.destroy(errorText(err));
          }),
      );
    },
  );
  // a TLS failure (a scanner, a client that does not trust us) is not an agent event; it is logged only
  server.on("tlsClientError", (err, socket) => {
    deps.log("agent listener: TLS handshake failed", { error: err.message, client: socket.remoteAddress });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(deps.listen.port, deps.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address();
  const address =
    bound && typeof bound === "object"
      ? `${bound.address.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`
      : "";
  deps.log(`agent listener on ${address}; agents pin its key as ${pin}`);
  return {
    address,
    pin,
    admit: () => startAdmitting(),
    async close() {
      // server.close() calls back only once every connection has ended, and a connected agent's tunnel never ends
      // on its own (heartbeats keep it alive): stop accepting, refuse what still completes its TLS handshake, end
      // the tunnels, then wait for the listener
      closing = true;
      startAdmitting();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...tunnels].map((t) => t.destroy("gateway stopped")));
      await closed;
      await Promise.allSettled([...pending]);
    },
  };
}

/** One agent's tunnel as seen from the gateway: an HTTP/2 client session over the agent's TLS socket. */
class Tunnel implements AgentInstance {
  readonly #session: ClientHttp2Session;
  readonly #streams = new Set<ClientHttp2Stream>();
  #hello: Hello | undefined;
  #connections: ReadonlySet<string> = new Set();
  #refusals: ReadonlyMap<string, string> = new Map();
  #capabilities: readonly string[] = [];
  #tunnelVersion = 1;
  /** In the registry: streams may be opened through it. */
  #admitted = false;
  /** `agent.connected` was appended, so `agent.disconnected` must follow. */
  #announced = false;
  #ended = false;
  #departure: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  readonly connectedAt = new Date();
  lastSeen = new Date();

  constructor(
    private readonly socket: TLSSocket,
    readonly address: string,
    private readonly deps: AgentEndpointDeps,
    private readonly tunnels: Set<Tunnel>,
  ) {
    // before HTTP/2 hooks the socket: when it closes, open streams fail with the reason first (the adapters tell
    // their clients why), instead of just ending as Node's session teardown would leave them
    socket.once("close", () => this.end("the tunnel's connection closed"));
    this.#session = http2.connect("http://agent.invalid", {
      createConnection: () => socket,
      settings: { initialWindowSize: STREAM_WINDOW },
    });
    this.#session.on("error", (err) => this.end(`tunnel error: ${err.message}`));
    this.#session.once("close", () => this.end("the agent closed the tunnel"));
    this.#session.on("connect", () => this.#session.setLocalWindowSize(SESSION_WINDOW));
    tunnels.add(this);
  }

  get name(): string {
    return this.#hello?.name ?? "?";
  }
  get instance(): string {
    return this.#hello?.instance ?? "?";
  }
  get version(): string {
    return this.#hello?.version ?? "?";
  }
  get tunnel(): number {
    return this.#tunnelVersion;
  }
  get capabilities(): readonly string[] {
    return this.#capabilities;
  }
  get connections(): ReadonlySet<string> {
    return this.#connections;
  }
  get refusals(): ReadonlyMap<string, string> {
    return this.#refusals;
  }
  get openStreams(): number {
    return this.#streams.size;
  }

  /** Hello, token check, welcome; then the tunnel serves streams until it ends. */
  async admit(tokens: { name: string; hash: Buffer }[]): Promise<void> {
    const { deps } = this;
    const helloStream = this.#session.request({ ":method": "GET", ":path": HELLO_PATH });
    let hello: Hello;
    try {
      const parsed = helloSchema.safeParse(
        parseJson(await readBody(helloStream, MAX_HANDSHAKE_BYTES, HANDSHAKE_TIMEOUT_MS), "hello"),
      );
      if (!parsed.success) throw new Error(`malformed hello: ${parsed.error.issues[0]?.message ?? "invalid"}`);
      hello = parsed.data;
    } catch (err) {
      await this.#refuse(undefined, `no valid hello: ${errorText(err)}`);
      return;
    }
    // every configured hash is compared (fixed-length digests), so timing says nothing about which one matched
    const presented = createHash("sha256").update(hello.token, "utf8").digest();
    let match: string | undefined;
    for (const t of tokens) if (timingSafeEqual(presented, t.hash) && t.name === hello.name) match = t.name;
    if (match === undefined) {
      await this.#refuse(hello, "unknown agent name or wrong token");
      return;
    }
    this.#hello = hello;
    this.#tunnelVersion = Math.min(hello.tunnel, TUNNEL_VERSION);
    this.#capabilities = CAPABILITIES.filter((c) => hello.capabilities.includes(c));
    const assigned = new Map(
      deps.config.connections.filter((c) => c.via === `agent/${hello.name}`).map((c) => [c.name, c]),
    );
    const accepted: string[] = [];
    const refused: { connection: string; reason: string }[] = [];
    for (const connection of hello.connections) {
      const config = assigned.get(connection);
      const reason = !config
        ? deps.config.connections.some((c) => c.name === connection)
          ? `connection "${connection}" is not assigned to agent ${hello.name}`
          : `no connection named "${connection}"`
        : credentialsMissing(config, hello, this.#capabilities);
      if (reason === undefined) accepted.push(connection);
      else refused.push({ connection, reason });
    }
    this.#connections = new Set(accepted);
    this.#refusals = new Map(refused.map((r) => [r.connection, r.reason]));
    // evidence before effect: the agent serves nothing until its arrival is on record; from here on its departure
    // is recorded too, whenever the tunnel ends (appends keep call order, so it lands after the arrival)
    this.#announced = true;
    await deps.audit({
      type: "agent.connected",
      decision: "allow",
      data: {
        agent: hello.name,
        instance: hello.instance,
        version: hello.version,
        address: this.address,
        tunnel: this.#tunnelVersion,
        capabilities: [...this.#capabilities],
        connections: accepted,
        ...(refused.length > 0 ? { refused } : {}),
      },
    });
    if (this.#ended) return;
    await this.#welcome({
      ok: true,
      tunnel: this.#tunnelVersion,
      gateway_version: deps.version,
      capabilities: [...this.#capabilities],
      heartbeat_ms: deps.config.agents.heartbeat,
      connections: accepted,
      refused,
    });
    if (this.#ended) return;
    this.#admitted = true;
    deps.registry.add(this);
    this.#startHeartbeat();
    if (refused.length > 0)
      deps.log(`agent ${hello.name} announced connections it may not serve`, { refused: refused.map((r) => r.reason) });
  }

  async #refuse(hello: Hello | undefined, reason: string): Promise<void> {
    await recordRefusal(this.deps, hello, this.address, reason);
    // tell the agent why (it logs it), then close; a peer that is no agent simply gets the close
    await this.#welcome({ ok: false, error: reason }).catch(() => undefined);
    await this.destroy(`refused: ${reason}`);
  }

  async #welcome(body: object): Promise<void> {
    const stream = this.#session.request({
      ":method": "POST",
      ":path": WELCOME_PATH,
      "content-type": "application/json",
    });
    stream.end(JSON.stringify(body));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the agent did not acknowledge welcome")), HANDSHAKE_TIMEOUT_MS);
      stream.once("response", () => {
        clearTimeout(timer);
        resolve();
      });
      stream.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    stream.resume();
  }

  #startHeartbeat(): void {
    let awaiting = false;
    this.#heartbeat = setInterval(() => {
      if (awaiting) {
        this.end(`no heartbeat answer within ${this.deps.config.agents.heartbeat} ms`);
        return;
      }
      awaiting = true;
      this.#session.ping((err) => {
        if (err) return;
        awaiting = false;
        this.lastSeen = new Date();
        this.deps.registry.seen(this);
      });
    }, this.deps.config.agents.heartbeat);
    this.#heartbeat.unref();
  }

  openStream(
    connection: string,
    endpoint: TargetEndpoint,
    purpose: StreamPurpose,
    sessionId?: string,
    origin?: "http",
  ): Promise<Duplex> {
    if (this.#ended || !this.#admitted)
      return Promise.reject(new TargetUnreachableError(`agent ${this.name} is not connected`));
    const host = endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host;
    const stream = this.#session.request(
      {
        ":method": "CONNECT",
        ":authority": `${host}:${endpoint.port}`,
        [STREAM_HEADERS.connection]: connection,
        [STREAM_HEADERS.purpose]: purpose,
        ...(sessionId ? { [STREAM_HEADERS.session]: sessionId } : {}),
        ...(origin ? { [STREAM_HEADERS.origin]: origin } : {}),
      },
      { endStream: false },
    );
    this.#streams.add(stream);
    stream.once("close", () => this.#streams.delete(stream));
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        clearTimeout(timer);
        stream.destroy();
        reject(
          err instanceof TargetUnreachableError
            ? err
            : new TargetUnreachableError(`agent ${this.name}: ${err.message}`),
        );
      };
      const timer = setTimeout(
        () => fail(new Error(`no answer to opening a stream within ${STREAM_OPEN_TIMEOUT_MS} ms`)),
        STREAM_OPEN_TIMEOUT_MS,
      );
      stream.once("error", fail);
      stream.once("response", (headers) => {
        const status = Number(headers[":status"]);
        if (status !== 200) {
          const why = headers[STREAM_HEADERS.error];
          fail(
            new TargetUnreachableError(
              `agent ${this.name}: ${typeof why === "string" ? why : `refused the stream (${status})`}`,
            ),
          );
          return;
        }
        clearTimeout(timer);
        stream.off("error", fail);
        this.lastSeen = new Date();
        // adapters (node:http among them) may write strings: see buffersOnly
        resolve(buffersOnly(stream));
      });
    });
  }

  oracle(connection: string): CredentialOracle {
    return tunnelOracle(this.name, connection, (request) => this.#credential(request));
  }

  /** One `/v1/credential` exchange: the agent's answer (a refusal included), or an error if none arrived. */
  async #credential(request: CredentialRequest): Promise<CredentialAnswer> {
    if (this.#ended || !this.#admitted) throw new Error(`agent ${this.name} is not connected`);
    const stream = this.#session.request({
      ":method": "POST",
      ":path": CREDENTIAL_PATH,
      "content-type": "application/json",
    });
    // counted like a target stream: a tunnel that ends fails it with the reason, and it weighs in the spread
    this.#streams.add(stream);
    stream.once("close", () => this.#streams.delete(stream));
    stream.end(JSON.stringify(request));
    const body = await readBody(stream, MAX_CREDENTIAL_BYTES, CREDENTIAL_TIMEOUT_MS);
    const parsed = credentialAnswerSchema.safeParse(parseJson(body, "the credential answer"));
    if (!parsed.success) throw new Error("malformed credential answer");
    this.lastSeen = new Date();
    return parsed.data;
  }

  /** `destroy` for event handlers: the departure record's promise never rejects, and close() awaits it. */
  end(reason: string): void {
    this.destroy(reason).catch(() => undefined);
  }

  /**
   * Ends the tunnel once: open streams fail with the reason, and an admitted agent's departure is recorded. The
   * tunnel stays in the endpoint's set until then, so closing the endpoint waits for the record.
   */
  destroy(reason: string): Promise<void> {
    this.#departure ??= this.#depart(reason).finally(() => this.tunnels.delete(this));
    return this.#departure;
  }

  #depart(reason: string): Promise<void> {
    this.#ended = true;
    clearInterval(this.#heartbeat);
    const open = this.#streams.size;
    for (const s of this.#streams) s.destroy(new TargetUnreachableError(`agent ${this.name} disconnected: ${reason}`));
    this.#session.destroy();
    this.socket.destroy();
    if (this.#admitted) this.deps.registry.remove(this);
    if (!this.#announced) return Promise.resolve();
    return this.deps
      .audit({
        type: "agent.disconnected",
        data: {
          agent: this.name,
          instance: this.instance,
          address: this.address,
          reason,
          open_streams: open,
          connected_ms: Date.now() - this.connectedAt.getTime(),
        },
      })
      .then(
        () => undefined,
        (err: unknown) => this.deps.log("agent.disconnected could not be recorded", { error: errorText(err) }),
      );
  }
}

/**
 * Why an agent cannot serve a connection assigned to it whose credentials only the agent holds (`secrets: agent`):
 * the tunnel lacks the capability for its protocol, or the agent holds no credential of the kind its login needs.
 * Undefined when it can (and for every connection whose credentials the gateway holds).
 */
export function credentialsMissing(
  connection: ConnectionConfig,
  hello: Hello,
  capabilities: readonly string[],
): string | undefined {
  if (connection.secrets !== "agent") return undefined;
  const why = `connection "${connection.name}" keeps its credentials on the agent (secrets: agent)`;
  const needs = AGENT_CREDENTIALS[connection.type];
  if (!needs) return `${why}, which ${connection.type} connections cannot do`;
  if (!capabilities.includes(needs.capability))
    return `${why}, and agent ${hello.name} (version ${hello.version}) does not offer ${needs.capability}`;
  const held =
    needs.kind === "http" && hello.http_credentials?.includes(connection.name)
      ? "http"
      : hello.credentials?.[connection.name];
  if (held === undefined) return `${why}, and agent ${hello.name} holds no credentials for it`;
  if (held !== needs.kind)
    return `${why}, and agent ${hello.name} holds ${credentialNoun(held)} for it, but ${connection.type} logins through an agent need ${credentialNoun(needs.kind)}`;
  return undefined;
}

/** "a password", "a private_key", "an http credential": a kind of credential in a message. */
export function credentialNoun(kind: string): string {
  return kind === "http" ? "an http credential" : `a ${kind}`;
}

/** `agent.refused`: a peer that did not get in, with whatever it claimed to be. Never fails the caller. */
function recordRefusal(
  deps: AgentEndpointDeps,
  hello: Pick<Hello, "name" | "instance" | "version"> | undefined,
  address: string,
  reason: string,
): Promise<void> {
  return deps
    .audit({
      type: "agent.refused",
      decision: "deny",
      data: {
        ...(hello ? { agent: hello.name, instance: hello.instance, version: hello.version } : {}),
        address,
        reason,
      },
    })
    .then(
      () => undefined,
      (err: unknown) => deps.log("agent.refused could not be recorded", { error: errorText(err) }),
    );
}
