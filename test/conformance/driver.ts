/**
 * What the adapter conformance suite (test/conformance/suite.ts) needs from one protocol: how a real client of that
 * protocol runs a request and logs in, and how to tell whether the target saw a request. A new adapter passes the
 * suite by providing one of these (docs/architecture.md, "Adding a protocol").
 */
import type { ProtocolAdapter } from "../../src/core/adapter/index.js";
import type { ConnectionType } from "../../src/core/policy/vocabulary.js";

/** What the client saw: its refusal answer (SQLSTATE, exit status...) when refused, and every byte it was shown. */
export interface ClientOutcome {
  ok: boolean;
  /** The protocol's refusal answer, in the adapter's `refusals` vocabulary. */
  answer?: unknown;
  /** Everything the client was shown (results, errors, messages), for the credential check. */
  shown: string;
}

export interface ConformanceDriver {
  protocol: ConnectionType;
  adapter: ProtocolAdapter;
  /** The connection the suite uses (its config comes from `connectionsYaml`). */
  connection: string;
  /**
   * Connections for the shared gateway config (YAML list items at column 2), with `access: [group:ci]`, including:
   * `connection` with a guardrail that denies `denied(...)`, and `${connection}-badcred` whose target refuses the
   * held credential (`badSecret`).
   */
  connectionsYaml(): string;
  /**
   * Top-level YAML the adapter needs (its listener's settings), if any. Read after `start()`. Drivers whose adapters
   * share a listener (HTTP and Kubernetes) give the same text, which the suite writes once.
   */
  topYaml?: string;
  /**
   * Starts what the driver's connections point at when that is a server of the test's own (an HTTP service, a
   * stand-in Kubernetes API server) rather than one of test/services.sh; called before `connectionsYaml` and
   * `topYaml` are read. `stop()` ends it after the gateway has stopped.
   */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /**
   * The client's answer when the gateway cannot reach the connection's target (its agent is offline): the adapter's
   * own wording for that as this client reports it. Not one of the `refusals`: the core does not refuse, the target
   * is out of reach.
   */
  unreachable: unknown;
  /**
   * The adapter opens its target stream when it forwards a request (HTTP's per-session pool), not as the session
   * starts (PostgreSQL, SSH): a route through an agent is then recorded after the request's audit record, not before.
   */
  dialsPerRequest?: boolean;
  /** A request the target visibly carries out (the marker shows up in `targetSaw`). */
  allowed(marker: string): string;
  /** A request the connection's guardrail denies. */
  denied(marker: string): string;
  /** Whether the target received a request carrying the marker. */
  targetSaw(marker: string): Promise<boolean>;
  /** Logs in as `token` to `connection` on the gateway's listener at `port`, runs `request`, and leaves. */
  once(port: number, connection: string, token: string, request: string): Promise<ClientOutcome>;
  /** A session that stays open between requests (a psql connection, an SSH connection with channels). */
  open(port: number, connection: string, token: string): Promise<DriverSession>;
  /** Credentials the gateway holds for this protocol's targets: no client may ever see one. */
  secrets(): string[];
}

export interface DriverSession {
  run(request: string): Promise<ClientOutcome>;
  close(): Promise<void>;
}
