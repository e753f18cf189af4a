import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { TargetConnector } from "../../core/adapter/index.js";
import { AuthError } from "../../core/identity/errors.js";
import type { IdentityVerifier } from "../../core/identity/verifier.js";
import type { PostgresConnectionConfig } from "../../core/policy/schema.js";
import { SessionRefusedError, type Gate, type GatedSession } from "../../core/session/gate.js";
import { BackendRelay, type ResultSummary } from "./backend.js";
import type { CancelRegistry } from "./cancel.js";
import { CatalogResolver } from "./catalog.js";
import { COPY_OUT_BINARY, maskingRule } from "./copy-policy.js";
import { ProtocolError } from "./framing.js";
import { FrontendPipeline } from "./frontend.js";
import type { SqlAnalyzerLike } from "./sql-reading.js";
import { readParameterStatus, TargetLexerState } from "./lexer-state.js";
import { paramMaskerFor } from "./params.js";
import type { MaskerLike } from "./result-mask.js";
import { SideQueryConnection } from "./side-query.js";
import { ownRefusalMessage, POSTGRES_REFUSALS } from "./refusals.js";
import { readBearerPassword, readClientHello, StartupError, type StartupOptions } from "./startup.js";
import { cancelOnTarget, connectTarget, TargetError, type OpenTargetStream, type TargetConnection } from "./target.js";
import { AUTH_OK, authenticationRequest, backendKeyData, errorResponse, readyForQuery, SQLSTATE } from "./wire.js";

export interface ConnectionDeps {
  gate: Gate;
  /** The only way to the target: the session's stream, cancel requests and catalog lookups. */
  connector: TargetConnector;
  verifier: IdentityVerifier;
  cancels: CancelRegistry;
  analyzer: SqlAnalyzerLike;
  /** The masker for a connection, or undefined when it has no masking rules. */
  maskerFor: (connection: PostgresConnectionConfig) => { masker: MaskerLike; maskText: string } | undefined;
  tls: (remoteAddress: string | undefined) => StartupOptions;
  /** Rows per result kept in the recording. */
  sampleRows: number;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Time allowed from accept to a logged-in session (default 60 s). */
  loginTimeoutMs?: number;
  /** Told about each session's closing, so the listener can wait for the evidence of every session on stop. */
  track: (closing: Promise<unknown>) => void;
}

/** Client startup parameters passed on to the target; everything else (options, replication...) is dropped. */
const FORWARDED_PARAMS = new Set([
  "application_name",
  "client_encoding",
  "datestyle",
  "timezone",
  "intervalstyle",
  "extra_float_digits",
  "search_path",
  "statement_timeout",
  "lock_timeout",
  "idle_in_transaction_session_timeout",
]);

class ClientGone extends Error {}

function fatal(socket: Socket | TLSSocket, code: string, message: string): void {
  if (socket.destroyed) return;
  socket.end(errorResponse({ severity: "FATAL", code, message }));
  // do not wait forever for a client that never reads its error
  setTimeout(() => socket.destroy(), 2000).unref();
}

/** Serves one accepted client socket from startup to close. Never throws. */
export async function serveConnection(raw: Socket, deps: ConnectionDeps): Promise<void> {
  raw.setNoDelay(true);
  raw.on("error", () => undefined);
  const clientAddress = raw.remoteAddress ? `${raw.remoteAddress}:${raw.remotePort}` : undefined;
  let socket: Socket | TLSSocket = raw;
  // like PostgreSQL's authentication_timeout: a client that never finishes logging in holds nothing for long
  const loginTimer = setTimeout(() => {
    fatal(socket, SQLSTATE.protocolViolation, "gatehouse: canceling authentication due to timeout");
  }, deps.loginTimeoutMs ?? 60_000);
  loginTimer.unref();
  try {
    const hello = await readClientHello(raw, deps.tls(raw.remoteAddress));
    if (hello.kind === "cancel") {
      clearTimeout(loginTimer);
      raw.end();
      await deps.cancels.cancel(hello.pid, hello.secret).catch(() => undefined);
      return;
    }
    socket = hello.socket;
    socket.on("error", () => undefined);
    const database = hello.params.get("database") ?? hello.params.get("user") ?? "";
    const user = hello.params.get("user") ?? "";
    if (hello.params.has("replication")) {
      throw new StartupError(SQLSTATE.featureNotSupported, "gatehouse: replication connections are not supported");
    }
    const slash = database.indexOf("/");
    const connectionName = slash < 0 ? database : database.slice(0, slash);
    const otherDb = slash < 0 ? undefined : database.slice(slash + 1);

    const token = await readBearerPassword(socket, hello.reader);
    let identity;
    try {
      identity = await deps.verifier.verify(token);
    } catch (err) {
      const code = err instanceof AuthError ? err.code : "error";
      const message = err instanceof AuthError ? err.message : "token could not be verified";
      await deps.gate.authFailed({ protocol: "postgres", connection: connectionName, clientAddress, code, message });
      throw new StartupError(SQLSTATE.invalidPassword, `gatehouse: password authentication failed: ${message}`);
    }

    let session: GatedSession;
    try {
      session = await deps.gate.openSession({
        identity,
        connection: connectionName,
        protocol: "postgres",
        ...(clientAddress ? { clientAddress } : {}),
        data: {
          user,
          ...(otherDb ? { database: otherDb } : {}),
          ...(hello.params.get("application_name") ? { application_name: hello.params.get("application_name") } : {}),
          tls: hello.tls,
        },
      });
    } catch (err) {
      if (err instanceof SessionRefusedError) {
        const code = POSTGRES_REFUSALS.session[err.code];
        const message =
          err.code === "unknown_connection"
            ? `gatehouse: connection "${connectionName}" does not exist`
            : `gatehouse: ${err.message}`;
        throw new StartupError(code, message);
      }
      throw err;
    }
    clearTimeout(loginTimer);
    await runSession(
      socket,
      hello.reader.detach(),
      session,
      // openSession refuses a connection of another type
      session.connection.config as PostgresConnectionConfig,
      otherDb,
      hello.params,
      deps,
    );
  } catch (err) {
    clearTimeout(loginTimer);
    if (err instanceof StartupError) fatal(socket, err.code, err.message);
    else if (err instanceof ProtocolError) fatal(socket, SQLSTATE.protocolViolation, `gatehouse: ${err.message}`);
    else {
      deps.log("postgres connection failed", { client: clientAddress, error: String(err) });
      fatal(socket, SQLSTATE.systemError, "gatehouse: internal error");
    }
  }
}

async function runSession(
  client: Socket | TLSSocket,
  pending: Buffer,
  session: GatedSession,
  config: PostgresConnectionConfig,
  otherDb: string | undefined,
  startupParams: Map<string, string>,
  deps: ConnectionDeps,
): Promise<void> {
  const params: Record<string, string> = {};
  for (const [k, v] of startupParams) if (FORWARDED_PARAMS.has(k.toLowerCase())) params[k] = v;
  const database = otherDb ?? config.target.database ?? config.target.user;
  const open: OpenTargetStream = (purpose) => deps.connector.open(config, config.target, purpose);
  // The client may already be gone (it closed while its token was verified or the session opened, when the
  // startup reader consumed the close) or may go while the target is dialled: the session must still end.
  let clientGone = client.destroyed;
  const onEarlyClose = () => (clientGone = true);
  client.once("close", onEarlyClose);
  let target: TargetConnection;
  try {
    if (clientGone) throw new ClientGone();
    target = await connectTarget({ target: config.target, open, purpose: "session", database, params });
  } catch (err) {
    client.off("close", onEarlyClose);
    if (err instanceof ClientGone) {
      deps.track(session.close("client closed").catch(() => undefined));
      return;
    }
    const message = err instanceof TargetError || err instanceof Error ? err.message : String(err);
    await session.close("target unreachable", { error: message }).catch(() => undefined);
    const code =
      err instanceof TargetError ? (err.fields?.get("C") ?? SQLSTATE.connectionFailure) : SQLSTATE.connectionFailure;
    throw new StartupError(code, `gatehouse: could not connect to the target of "${config.name}": ${message}`);
  }
  client.off("close", onEarlyClose);
  const targetSocket = target.socket;
  targetSocket.on("error", () => undefined);
  if (clientGone || client.destroyed) {
    targetSocket.destroy();
    deps.track(session.close("client closed").catch(() => undefined));
    return;
  }

  let closing = false;
  let terminated = false;
  let side: Promise<SideQueryConnection> | undefined;
  const masking = deps.maskerFor(config);
  const key = deps.cancels.register({
    cancel: () => cancelOnTarget(config.target, open, target.key),
    onCancel: () => {
      try {
        session.recording.record("cancel", {});
      } catch {
        // recording full: the cancel still goes through
      }
    },
  });

  // how the target reads SQL text: its settings at login, then every change it reports
  const lexerState = new TargetLexerState();
  for (const ps of target.parameterStatus) {
    const status = readParameterStatus(ps.subarray(5));
    if (status) lexerState.observe(status.name, status.value);
  }
  const relay = new BackendRelay({
    client,
    target: targetSocket,
    sampleRows: deps.sampleRows,
    onParameterStatus: (name, value) => lexerState.observe(name, value),
    onResult: (summary: ResultSummary) => {
      try {
        // false: the recorder is past its high-water mark; the relay stops reading the target until it drained
        if (!session.recording.record("result", summary)) {
          return session.recording.drain().catch(recordingUnavailable);
        }
      } catch {
        // past the recorder's hard limit (its store is failing): the result already reached the client; the
        // audit record of the request stands
      }
      return undefined;
    },
    onUnscannableCopy: (text: string) => {
      // a binary COPY OUT got past the frontend's check (its format spelled with escapes): no row of it was
      // relayed; refuse it like the frontend would, and end the session, which is now in the middle of a COPY
      const rule = maskingRule(session);
      const reason = COPY_OUT_BINARY.reason;
      const refused = () => {
        fatal(client, SQLSTATE.insufficientPrivilege, ownRefusalMessage(reason, rule));
        close("binary copy out refused");
      };
      // refuse() never rejects; the second handler only keeps a bug there from going unhandled
      session.refuse({ text }, { reason, rule, stage: "output" }).then(refused, refused);
    },
    ...(masking
      ? {
          masking: {
            masker: masking.masker,
            maskText: masking.maskText,
            resolver: new CatalogResolver(() => {
              side ??= connectTarget({
                target: config.target,
                open,
                purpose: "catalog",
                database,
                params: { application_name: "gatehouse-catalog" },
              }).then((c) => new SideQueryConnection(c));
              return side;
            }),
          },
        }
      : {}),
  });

  /** Ends the session; `error`: the FATAL the client reads last, after what the relay still held for it. */
  const close = (reason: string, error?: { code: string; message: string }): void => {
    if (closing) return;
    closing = true;
    // results the relay held back for a full recorder are recorded before the seal
    relay.finish();
    pipeline.close();
    key.release();
    if (!targetSocket.destroyed && !terminated) targetSocket.end(Buffer.from([0x58, 0, 0, 0, 4]));
    if (error) fatal(client, error.code, error.message);
    else if (!client.destroyed) client.end();
    // the side connection only answers catalog questions: closing it cannot lose evidence
    side?.then((s) => s.close()).catch(() => undefined);
    deps.track(
      session
        .close(reason)
        .catch((err) => deps.log("session close failed", { session: session.id, error: String(err) })),
    );
  };

  /**
   * The recorder's store failed while this session waited for it (back-pressure after a forwarded request, in the
   * middle of its messages or results): no ERROR fits there, so the session ends with a FATAL that names the cause,
   * like a login refused for evidence (58000). Its queued events, session.end and seal are written once the store
   * is back (docs/evidence.md).
   */
  function recordingUnavailable(err: unknown): void {
    const cause = err instanceof Error ? err.message : String(err);
    close("evidence unavailable", {
      code: SQLSTATE.systemError,
      message: `gatehouse: evidence unavailable, session ended: ${cause}`,
    });
  }

  const pipeline = new FrontendPipeline({
    session,
    analyzer: deps.analyzer,
    lexerState,
    client,
    target: targetSocket,
    relay,
    describeBeforeExecute: masking?.masker.hasColumnRules === true,
    refuseCopyOut: masking?.masker.hasColumnRules === true,
    refuseBinaryCopyOut: masking?.masker.hasDetectors === true,
    paramMasker: paramMaskerFor(config),
    onFatal: (code, message) => {
      fatal(client, code, message);
      close("protocol violation");
    },
    onRecordingUnavailable: recordingUnavailable,
    onTerminate: () => {
      // The target answers everything sent before Terminate and then closes; the client gets those answers
      // first (the relay writes them as they arrive), and the session ends when the target has closed.
      terminated = true;
      if (!targetSocket.destroyed) targetSocket.end(Buffer.from([0x58, 0, 0, 0, 4]));
      setTimeout(() => close("client terminated"), 5000).unref();
    },
  });

  // The client logs in with the target's session parameters but the gateway's own cancel key.
  client.cork();
  client.write(authenticationRequest(AUTH_OK));
  for (const ps of target.parameterStatus) client.write(ps);
  client.write(backendKeyData(key.pid, key.secret));
  client.write(readyForQuery("I"));
  client.uncork();

  targetSocket.on("data", (chunk: Buffer) => relay.push(chunk));
  targetSocket.on("close", () => {
    if (terminated) close("client terminated");
    else if (!closing) {
      fatal(client, SQLSTATE.adminShutdown, "gatehouse: the target closed the connection");
      close("target closed");
    }
  });
  client.on("data", (chunk: Buffer) => pipeline.push(chunk));
  client.on("close", () => close("client closed"));
  if (target.leftover.length > 0) relay.push(target.leftover);
  targetSocket.resume();
  if (pending.length > 0) pipeline.push(pending);
  client.resume();
}
