/**
 * The adapter contract: what a protocol adapter provides, and what the core hands it. docs/architecture.md
 * ("Adding a protocol") walks through writing one; test/conformance runs every adapter against the core's
 * invariants.
 */
import type { IdentityVerifier } from "../identity/verifier.js";
import type { MaskerCache } from "../masking/cache.js";
import type { GatehouseConfig, HostPort } from "../policy/schema.js";
import type { ConnectionType } from "../policy/vocabulary.js";
import type { Gate, RefusalKind, SessionRefusedError } from "../session/gate.js";
import type { TargetConnector } from "./connector.js";

/** Which `listen` address an adapter serves on (kubernetes and http share the HTTP listener). */
export type ListenKey = "postgres" | "mysql" | "ssh" | "http";

export type Log = (msg: string, fields?: Record<string, unknown>) => void;

/** Everything the core hands an adapter when it starts. An adapter needs nothing else of `src/`. */
export interface AdapterContext {
  config: GatehouseConfig;
  /** The one gate every session and request passes (access, evidence before effect, fail closed). */
  gate: Gate;
  /** Bearer identities: OIDC JWTs and Gatehouse tokens. */
  verifier: IdentityVerifier;
  /** Where to listen. */
  listen: HostPort;
  /** The only way to reach a target (never dial a socket yourself). */
  connector: TargetConnector;
  /** Compiled masking rules per connection. */
  maskers: MaskerCache;
  log: Log;
}

export interface RunningAdapter {
  /** "host:port" actually bound. */
  address: string;
  /** Stops accepting, ends live sessions and resolves once their evidence is written (session.end, seal). */
  close(): Promise<void>;
}

/** Every way the core refuses, by what is refused: a session before it starts, or a single request. */
export interface RefusalAnswers<Answer> {
  session: Readonly<Record<SessionRefusedError["code"], Answer>>;
  request: Readonly<Record<RefusalKind, Answer>>;
}

/**
 * A protocol adapter. `Answer` is the protocol's own vocabulary for a refusal (a SQLSTATE, an exit status, an HTTP
 * status): `refusals` must name one for every refusal kind, so a kind added to the core does not compile until
 * every adapter has decided how its clients see it.
 */
export interface ProtocolAdapter<Answer = unknown> {
  readonly protocol: ConnectionType;
  readonly listenKey: ListenKey;
  readonly refusals: RefusalAnswers<Answer>;
  start(ctx: AdapterContext): Promise<RunningAdapter>;
}
