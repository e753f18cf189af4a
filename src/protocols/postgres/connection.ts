import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { openTarget, type TargetConnector } from "../../core/adapter/index.js";
import { AuthError } from "../../core/identity/errors.js";
import type { IdentityVerifier } from "../../core/identity/verifier.js";
import type { PostgresConnectionConfig } from "../../core/policy/schema.js";
import { SessionRefusedError, type Gate, type GatedSession } from "../../core/session/gate.js";
import type { CancelRegistry } from "./cancel.js";
import { ProtocolError } from "./framing.js";
import { fatal, RelayedSession } from "./relayed-session.js";
import type { MaskerLike } from "./result-mask.js";
import { POSTGRES_REFUSALS } from "./refusals.js";
import type { SqlAnalyzerLike } from "./sql-reading.js";
import { readBearerPassword, readClientHello, StartupError, type StartupOptions } from "./startup.js";
import { connectTarget, TargetError, type OpenTargetStream, type TargetConnection } from "./target.js";
import { SQLSTATE } from "./wire.js";

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

/**
 * The session is open: the gateway logs in to the target with the connection's credentials, then relays. The
 * client may already be gone (it closed while its token was verified or the session opened, when the startup
 * reader consumed the close) or may go while the target is dialled: the session must still end.
 */
async function runSession(
  client: Socket | TLSSocket,
  pending: Buffer,
  session: GatedSession,
  config: PostgresConnectionConfig,
  otherDb: string | undefined,
  startupParams: Map<string, string>,
  deps: ConnectionDeps,
): Promise<void> {
  const database = otherDb ?? config.target.database ?? config.target.user;
  // every stream of the session (its own, catalog lookups, cancels) goes the same way, with the same credentials
  const open: OpenTargetStream = (purpose) => openTarget(deps.connector, config, config.target, purpose, { session });
  const connection = await loginToTarget(client, session, config, open, database, forwardedParams(startupParams), deps);
  if (connection === undefined) return;
  new RelayedSession(client, session, { config, connection, open, database }, deps).start(pending);
}

/** The client's startup parameters the target gets (FORWARDED_PARAMS). */
function forwardedParams(startupParams: Map<string, string>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [k, v] of startupParams) if (FORWARDED_PARAMS.has(k.toLowerCase())) params[k] = v;
  return params;
}

/**
 * The target's session, logged in; undefined when the client left meanwhile (the session is closed then). A target
 * that cannot be reached or refuses the login closes the session and throws the StartupError the client gets.
 */
async function loginToTarget(
  client: Socket | TLSSocket,
  session: GatedSession,
  config: PostgresConnectionConfig,
  open: OpenTargetStream,
  database: string,
  params: Record<string, string>,
  deps: ConnectionDeps,
): Promise<TargetConnection | undefined> {
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
      return undefined;
    }
    const message = err instanceof TargetError || err instanceof Error ? err.message : String(err);
    await session.close("target unreachable", { error: message }).catch(() => undefined);
    const code =
      err instanceof TargetError ? (err.fields?.get("C") ?? SQLSTATE.connectionFailure) : SQLSTATE.connectionFailure;
    throw new StartupError(code, `gatehouse: could not connect to the target of "${config.name}": ${message}`);
  }
  client.off("close", onEarlyClose);
  target.socket.on("error", () => undefined);
  if (clientGone || client.destroyed) {
    target.socket.destroy();
    deps.track(session.close("client closed").catch(() => undefined));
    return undefined;
  }
  return target;
}
