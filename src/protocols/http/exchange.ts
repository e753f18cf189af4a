import type { Agent, IncomingMessage, ServerResponse } from "node:http";
import { isAuthError } from "../../core/identity/errors.js";
import { emptyFacts, type RequestFacts } from "../../core/policy/facts.js";
import { SessionRefusedError, type Admission, type GatedSession } from "../../core/session/gate.js";
import { BodyEvidence } from "./body-evidence.js";
import type { ClientSessions } from "./client-sessions.js";
import type { ConnectionProfile } from "./profile.js";
import { HTTP_REFUSALS, kubernetesStatusBody, problemBody, type Refusal } from "./refusals.js";
import { normalizeRequestPath } from "./request-path.js";
import { masksAnything, maskWholeBody, type BodyMasking } from "./response-masking.js";
import { relayResponse } from "./response-relay.js";
import type { HttpFamilyConnection, Router } from "./router.js";
import { forwardedHeaders, type TargetClient } from "./target-client.js";
import { record } from "./upgrade.js";

/** What the listener shares with every exchange. */
export interface ExchangeDeps {
  router: Router;
  /** The connection's profile and target client (compiled once per connection). */
  connection(config: HttpFamilyConnection): { profile: ConnectionProfile; target: TargetClient };
  authFailed(client: ClientSessions, code: string, message: string, connection?: string): Promise<void>;
  log(msg: string, fields?: Record<string, unknown>): void;
}

/** How a refusal is worded: a connection's profile, or a guess before the connection is known. */
export type RefusalWording = Pick<ConnectionProfile, "refusalBody">;

const KUBERNETES_WORDING: RefusalWording = { refusalBody: kubernetesStatusBody };

/** A request that looks like one to a Kubernetes API server (its paths, or kubectl) is answered with a Status. */
function guessWording(path: string, userAgent: string | undefined): RefusalWording | undefined {
  if (/^\/(?:api|apis|version|openapi)(?:[/?]|$)/.test(path) || /^kubectl\//.test(userAgent ?? ""))
    return KUBERNETES_WORDING;
  return undefined;
}

/** The bearer token of an `Authorization: Bearer` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

/**
 * What every request (plain or upgrade) goes through before anything reaches the target: the bearer token, the
 * connection it names, the session, the path read two ways refused, and the request read into facts. Resolves
 * with what is needed to admit it, or answers the client itself (a refusal) and resolves undefined.
 */
export async function prepareRequest(
  deps: ExchangeDeps,
  client: ClientSessions,
  req: IncomingMessage,
  answer: (r: Refusal, wording?: RefusalWording) => void,
): Promise<Prepared | undefined> {
  const token = bearerToken(req.headers.authorization);
  const route = deps.router.route(req.url ?? "/", req.headers.host);
  const named = "error" in route ? undefined : route.connection;
  // before the connection is known (no token, unknown name), a Kubernetes client still gets a Status it can print
  const guessed = () => ("error" in route ? undefined : guessWording(route.path, req.headers["user-agent"]));
  if (token === undefined) {
    const message = req.headers.authorization
      ? "the Authorization header is not a bearer token"
      : "no bearer token: send Authorization: Bearer <token>";
    await deps.authFailed(client, "missing_token", message, named);
    answer({ status: 401, kind: "unauthorized", message }, guessed());
    return undefined;
  }
  if ("error" in route) {
    answer({ status: 404, kind: "no-connection", message: route.error });
    return undefined;
  }
  const config = route.config;
  const protocol = config?.type ?? "http";
  const own = config ? deps.connection(config) : undefined;
  const wording = own?.profile ?? guessed();
  let session: GatedSession;
  try {
    session = await client.session(token, route.connection, protocol);
  } catch (err) {
    if (isAuthError(err)) {
      await deps.authFailed(client, err.code, err.message, route.connection);
      answer({ status: 401, kind: "unauthorized", message: err.message }, wording);
    } else if (err instanceof SessionRefusedError) {
      answer(
        { status: HTTP_REFUSALS.session[err.code], kind: err.code, message: err.message, rule: err.rule?.path },
        wording,
      );
    } else {
      answer({ status: 503, kind: "unavailable", message: `the session could not start: ${String(err)}` }, wording);
    }
    return undefined;
  }
  // the gate let the session open, so the connection exists and is of this type
  const { profile, target } = own as NonNullable<typeof own>;
  const method = (req.method ?? "GET").toUpperCase();
  const text = `${method} ${route.path}`;
  const refuse = async (message: string, status = 400) => {
    await session.refuse({ text, data: { method } }, { reason: message });
    answer({ status, kind: "bad-request", message }, profile);
    return undefined;
  };
  const path = normalizeRequestPath(route.path);
  if ("error" in path) return refuse(path.error);
  const header = profile.refusedHeader?.(req.headers);
  if (header) return refuse(header, 403);
  const reading = profile.read(method, path.path, path.query.slice(1));
  const base = {
    session,
    profile,
    target,
    pool: client.pool(session, target),
    method,
    path: path.path + path.query,
    config: config as HttpFamilyConnection,
  };
  if ("unparseable" in reading) {
    return {
      ...base,
      text,
      facts: { ...emptyFacts(), unparseable: { reason: reading.unparseable } },
      data: { method },
      stream: false,
      masking: profile.masking,
    };
  }
  return {
    ...base,
    text,
    facts: reading.facts,
    data: reading.data,
    stream: reading.stream ?? false,
    masking: reading.masking ?? profile.masking,
  };
}

export interface Prepared {
  session: GatedSession;
  profile: ConnectionProfile;
  target: TargetClient;
  /** The session's keep-alive sockets to the target. */
  pool: Agent;
  config: HttpFamilyConnection;
  method: string;
  /** Normalized path + query, as the target gets it (below the connection URL's own path). */
  path: string;
  text: string;
  facts: RequestFacts;
  data: Record<string, unknown>;
  stream: boolean;
  masking: BodyMasking;
}

/** A refused admission, as the client is told. */
export function admissionRefusal(admission: Extract<Admission, { forward: false }>): Refusal {
  return {
    status: HTTP_REFUSALS.request[admission.kind],
    kind: admission.kind,
    message: admission.message,
    rule: admission.rule?.path,
    approvalId: admission.approvalId,
  };
}

/** Sends a refusal as the connection's type words it (problem document, Kubernetes Status). */
export function sendRefusal(res: ServerResponse, r: Refusal, profile?: RefusalWording): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { contentType, body } = (profile?.refusalBody ?? problemBody)(r);
  const headers: Record<string, string> = {
    "content-type": contentType,
    "content-length": String(Buffer.byteLength(body)),
  };
  if (r.status === 401) headers["www-authenticate"] = 'Bearer realm="gatehouse"';
  res.writeHead(r.status, headers);
  res.end(body);
}

/** One plain (non-upgrade) request: prepared, admitted, forwarded, its response masked and recorded. */
export async function handleExchange(
  deps: ExchangeDeps,
  client: ClientSessions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const answer = (r: Refusal, profile?: RefusalWording) => {
    // a refused request's body is never read: the connection closes after the answer rather than parse it
    if (!req.complete) res.shouldKeepAlive = false;
    sendRefusal(res, r, profile);
  };
  const p = await prepareRequest(deps, client, req, answer);
  if (!p) return;
  const gone = clientGone(res, p.session);
  const admission = await p.session.admit({
    text: p.text,
    facts: p.facts,
    data: { ...p.data, ...requestHeadersData(req) },
    ...(gone.signal ? { signal: gone.signal } : {}),
  });
  gone.detach();
  if (!admission.forward) {
    answer(admissionRefusal(admission), p.profile);
    return;
  }
  if (gone.happened) return;
  await forward(deps, p, req, res);
}

/**
 * Watches for the client going away while a request is admitted, so a request held for approval is cancelled. An
 * AbortSignal (and the DOMException its abort makes) costs tens of microseconds per request: it is made only when
 * the connection has approval rules, the only admissions that wait.
 */
export function clientGone(
  emitter: NodeJS.EventEmitter,
  session: GatedSession,
): { signal?: AbortSignal; readonly happened: boolean; detach(): void } {
  let happened = false;
  const controller = session.connection.approvals.length > 0 ? new AbortController() : undefined;
  const onClose = () => {
    happened = true;
    controller?.abort();
  };
  emitter.once("close", onClose);
  return {
    ...(controller ? { signal: controller.signal } : {}),
    get happened() {
      return happened;
    },
    detach: () => emitter.off("close", onClose),
  };
}

/** The request headers an audit record keeps: what describes the request, never credentials or cookies. */
function requestHeadersData(req: IncomingMessage): Record<string, unknown> {
  const h = req.headers;
  const out: Record<string, unknown> = {};
  if (h["content-type"]) out.content_type = h["content-type"];
  if (h["content-length"]) out.content_length = Number(h["content-length"]);
  else if (h["transfer-encoding"]) out.transfer_encoding = h["transfer-encoding"];
  if (h["user-agent"]) out.user_agent = h["user-agent"];
  return out;
}

async function forward(deps: ExchangeDeps, p: Prepared, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const headers = forwardedHeaders(req.headers, p.target.spec, p.target.host);
  const masking = p.masking;
  // masking reads bodies: ask for them uncompressed (a compressed one is refused, never passed unmasked)
  if (masksAnything(masking)) headers["accept-encoding"] = "identity";
  p.profile.adjustHeaders?.(headers, masking);
  const recordBytes = p.config.record_body_bytes;
  const upstream = p.target.request(p.method, p.path, headers, p.pool);
  const requestBody = new BodyEvidence(recordBytes);
  req.on("data", (chunk: Buffer) => requestBody.add(chunk));
  req.pipe(upstream);
  const recordRequestBody = () => {
    if (requestBody.bytes === 0) return;
    if (!masksAnything(masking) && !masking.jsonRequired)
      return record(p.session, "request_body", requestBody.summary());
    // the body reached the target as sent; the recording keeps it masked whole, or its size and hash alone
    let safe: Buffer | undefined;
    try {
      safe = requestBody.complete ? maskWholeBody(requestBody.head(), masking, req.headers["content-type"]) : undefined;
    } catch {
      // too deeply nested to mask: kept by size and hash
    }
    record(p.session, "request_body", requestBody.summary(safe ?? null));
  };

  const response = await new Promise<IncomingMessage | Error>((resolve) => {
    upstream.once("response", resolve);
    upstream.once("error", resolve);
  });
  if (response instanceof Error) {
    req.unpipe(upstream);
    recordRequestBody();
    record(p.session, "response", { error: response.message });
    deps.log("http: the target failed", { connection: p.config.name, err: response.message });
    sendRefusal(
      res,
      { status: 502, kind: "target-unreachable", message: `the target failed: ${response.message}` },
      p.profile,
    );
    return;
  }
  const result = await relayResponse(response, res, {
    method: p.method,
    masking,
    stream: p.stream,
    recordBodyBytes: recordBytes,
    held: p.target.held,
    refuse: (status, message) => sendRefusal(res, { status, kind: "unmaskable", message }, p.profile),
  });
  recordRequestBody();
  record(p.session, "response", {
    status: result.status,
    ...(response.headers["content-type"] ? { content_type: response.headers["content-type"] } : {}),
    ...(result.masked > 0 ? { masked: result.masked } : {}),
    ...result.body,
    ...(result.incomplete ? { incomplete: result.incomplete } : {}),
  });
}
