import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { PostgresConnectionConfig } from "../../core/policy/schema.js";
import { TargetUnreachableError } from "../../core/adapter/index.js";
import type { GatedSession } from "../../core/session/gate.js";
import { BackendRelay, type ResultSummary } from "./backend.js";
import { CatalogResolver } from "./catalog.js";
import type { ConnectionDeps } from "./connection.js";
import { COPY_OUT_BINARY, maskingRule } from "./copy-policy.js";
import { FrontendPipeline } from "./frontend.js";
import { readParameterStatus, TargetLexerState } from "./lexer-state.js";
import { paramMaskerFor } from "./params.js";
import { ownRefusalMessage, POSTGRES_REFUSALS } from "./refusals.js";
import { SideQueryConnection } from "./side-query.js";
import { cancelOnTarget, connectTarget, type OpenTargetStream, type TargetConnection } from "./target.js";
import { AUTH_OK, authenticationRequest, backendKeyData, errorResponse, readyForQuery, SQLSTATE } from "./wire.js";

/** Terminate, as the gateway sends it to the target. */
const TERMINATE = [0x58, 0, 0, 0, 4];

/** Ends the client's connection with a FATAL ErrorResponse. */
export function fatal(socket: Socket | TLSSocket, code: string, message: string): void {
  if (socket.destroyed) return;
  socket.end(errorResponse({ severity: "FATAL", code, message }));
  // do not wait forever for a client that never reads its error
  setTimeout(() => socket.destroy(), 2000).unref();
}

/** Where a logged-in session relays, and how it reaches the target again (cancel, catalog). */
export interface RelayTarget {
  config: PostgresConnectionConfig;
  connection: TargetConnection;
  open: OpenTargetStream;
  /** The database the session logged in to (catalog lookups use the same one). */
  database: string;
}

/**
 * A session once both sides are logged in, to its close: it wires the client to the target through the frontend
 * pipeline and the backend relay, holds the session's cancel key, and closes everything once, whichever side
 * ends first. The login itself is connection.ts's.
 */
export class RelayedSession {
  readonly #client: Socket | TLSSocket;
  readonly #session: GatedSession;
  readonly #target: RelayTarget;
  readonly #targetSocket: Duplex;
  readonly #deps: ConnectionDeps;
  readonly #key: { pid: number; secret: number; release: () => void };
  readonly #relay: BackendRelay;
  readonly #pipeline: FrontendPipeline;
  /** The side connection for catalog lookups, opened on the first one. */
  #side: Promise<SideQueryConnection> | undefined;
  #closing = false;
  #terminated = false;

  constructor(client: Socket | TLSSocket, session: GatedSession, target: RelayTarget, deps: ConnectionDeps) {
    this.#client = client;
    this.#session = session;
    this.#target = target;
    this.#targetSocket = target.connection.socket;
    this.#deps = deps;
    const masking = deps.maskerFor(target.config);
    this.#key = this.#registerCancel();
    const lexerState = targetLexerState(target.connection);
    this.#relay = new BackendRelay({
      client,
      target: this.#targetSocket,
      sampleRows: deps.sampleRows,
      onParameterStatus: (name, value) => lexerState.observe(name, value),
      onResult: (summary: ResultSummary) => this.#recordResult(summary),
      onUnscannableCopy: (text: string) => this.#refuseUnscannableCopy(text),
      ...(masking
        ? {
            masking: {
              masker: masking.masker,
              maskText: masking.maskText,
              resolver: new CatalogResolver(() => this.#catalog()),
            },
          }
        : {}),
    });
    this.#pipeline = new FrontendPipeline({
      session,
      analyzer: deps.analyzer,
      lexerState,
      client,
      target: this.#targetSocket,
      relay: this.#relay,
      describeBeforeExecute: masking?.masker.hasColumnRules === true,
      refuseCopyOut: masking?.masker.hasColumnRules === true,
      refuseBinaryCopyOut: masking?.masker.hasDetectors === true,
      paramMasker: paramMaskerFor(target.config),
      onFatal: (code, message) => {
        fatal(client, code, message);
        this.close("protocol violation");
      },
      onRecordingUnavailable: (err) => this.#recordingUnavailable(err),
      onTerminate: () => {
        // The target answers everything sent before Terminate and then closes; the client gets those answers
        // first (the relay writes them as they arrive), and the session ends when the target has closed.
        this.#terminated = true;
        if (!this.#targetSocket.destroyed) this.#targetSocket.end(Buffer.from(TERMINATE));
        setTimeout(() => this.close("client terminated"), 5000).unref();
      },
    });
  }

  /** Logs the client in and relays both ways; `pending`: what the client sent right after its startup. */
  start(pending: Buffer): void {
    const client = this.#client;
    const targetSocket = this.#targetSocket;
    const relay = this.#relay;
    const pipeline = this.#pipeline;
    greetClient(client, this.#target.connection, this.#key);
    targetSocket.on("data", (chunk: Buffer) => relay.push(chunk));
    // a stream the connector ended on purpose (its agent went away) says why; the message is safe to show
    let lost: TargetUnreachableError | undefined;
    targetSocket.on("error", (err) => {
      if (err instanceof TargetUnreachableError) lost ??= err;
    });
    targetSocket.on("close", () => {
      if (this.#terminated) this.close("client terminated");
      else if (!this.#closing) {
        fatal(client, SQLSTATE.adminShutdown, `gatehouse: ${lost?.message ?? "the target closed the connection"}`);
        this.close(lost ? `target lost: ${lost.message}` : "target closed");
      }
    });
    client.on("data", (chunk: Buffer) => pipeline.push(chunk));
    client.on("close", () => this.close("client closed"));
    const leftover = this.#target.connection.leftover;
    if (leftover.length > 0) relay.push(leftover);
    targetSocket.resume();
    if (pending.length > 0) pipeline.push(pending);
    client.resume();
  }

  /** Ends the session; `error`: the FATAL the client reads last, after what the relay still held for it. */
  close(reason: string, error?: { code: string; message: string }): void {
    if (this.#closing) return;
    this.#closing = true;
    const client = this.#client;
    const targetSocket = this.#targetSocket;
    const session = this.#session;
    const deps = this.#deps;
    // results the relay held back for a full recorder are recorded before the seal
    this.#relay.finish();
    this.#pipeline.close();
    this.#key.release();
    if (!targetSocket.destroyed && !this.#terminated) targetSocket.end(Buffer.from(TERMINATE));
    if (error) fatal(client, error.code, error.message);
    else if (!client.destroyed) client.end();
    // the side connection only answers catalog questions: closing it cannot lose evidence
    this.#side?.then((s) => s.close()).catch(() => undefined);
    deps.track(
      session
        .close(reason)
        .catch((err) => deps.log("session close failed", { session: session.id, error: String(err) })),
    );
  }

  /** The client cancels with the gateway's key; the gateway forwards the target's own key for it. */
  #registerCancel(): { pid: number; secret: number; release: () => void } {
    const { config, open, connection } = this.#target;
    return this.#deps.cancels.register({
      cancel: () => cancelOnTarget(config.target, open, connection.key),
      onCancel: () => {
        try {
          this.#session.recording.record("cancel", {});
        } catch {
          // recording full: the cancel still goes through
        }
      },
    });
  }

  #recordResult(summary: ResultSummary): Promise<void> | undefined {
    const recording = this.#session.recording;
    try {
      // false: the recorder is past its high-water mark; the relay stops reading the target until it drained
      if (!recording.record("result", summary)) {
        return recording.drain().catch((err: unknown) => this.#recordingUnavailable(err));
      }
    } catch {
      // past the recorder's hard limit (its store is failing): the result already reached the client; the
      // audit record of the request stands
    }
    return undefined;
  }

  /**
   * A binary COPY OUT got past the frontend's check (its format spelled with escapes): no row of it was relayed;
   * refuse it like the frontend would, and end the session, which is now in the middle of a COPY.
   */
  #refuseUnscannableCopy(text: string): void {
    const rule = maskingRule(this.#session);
    const reason = COPY_OUT_BINARY.reason;
    const refused = () => {
      fatal(this.#client, POSTGRES_REFUSALS.request.denied, ownRefusalMessage(reason, rule));
      this.close("binary copy out refused");
    };
    // refuse() never rejects; the second handler only keeps a bug there from going unhandled
    this.#session.refuse({ text }, { reason, rule, stage: "output" }).then(refused, refused);
  }

  /**
   * The recorder's store failed while this session waited for it (back-pressure after a forwarded request, in the
   * middle of its messages or results): no ERROR fits there, so the session ends with a FATAL that names the cause,
   * like a login refused for evidence (58000). Its queued events, session.end and seal are written once the store
   * is back (docs/evidence.md).
   */
  #recordingUnavailable(err: unknown): void {
    const cause = err instanceof Error ? err.message : String(err);
    this.close("evidence unavailable", {
      code: POSTGRES_REFUSALS.session.evidence_unavailable,
      message: `gatehouse: evidence unavailable, session ended: ${cause}`,
    });
  }

  /** The side connection the masker's catalog lookups use, opened once, on the first lookup. */
  #catalog(): Promise<SideQueryConnection> {
    const { config, open, database } = this.#target;
    this.#side ??= connectTarget({
      target: config.target,
      open,
      purpose: "catalog",
      database,
      params: { application_name: "gatehouse-catalog" },
    }).then((c) => new SideQueryConnection(c));
    return this.#side;
  }
}

/** How the target reads SQL text: its settings at login, then (through the relay) every change it reports. */
function targetLexerState(target: TargetConnection): TargetLexerState {
  const lexerState = new TargetLexerState();
  for (const ps of target.parameterStatus) {
    const status = readParameterStatus(ps.subarray(5));
    if (status) lexerState.observe(status.name, status.value);
  }
  return lexerState;
}

/** The client logs in with the target's session parameters but the gateway's own cancel key. */
function greetClient(client: Socket | TLSSocket, target: TargetConnection, key: { pid: number; secret: number }): void {
  client.cork();
  client.write(authenticationRequest(AUTH_OK));
  for (const ps of target.parameterStatus) client.write(ps);
  client.write(backendKeyData(key.pid, key.secret));
  client.write(readyForQuery("I"));
  client.uncork();
}
