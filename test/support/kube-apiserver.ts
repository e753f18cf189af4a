/**
 * A small stand-in Kubernetes API server for tests: no kube-apiserver can be installed on the test machines, and
 * the gateway's Kubernetes adapter must be tested against the real kubectl. It speaks enough of the API for kubectl
 * 1.33 to work unchanged: discovery, list/get/create/update/patch/delete with in-memory state, server-side Tables,
 * watch streams, pod logs (optionally followed) and exec over WebSocket (v5/v4 channel protocol) running a real local
 * process. Errors are `Status` objects, as from the real server. Every request is recorded, so a test can assert
 * what reached the server and what never did.
 *
 * Modules under kube-apiserver/: resources (types and table columns), seed (initial objects), store (state and
 * change events), discovery, table, exec, status, cert.
 */
import { randomBytes } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { selfSignedCert } from "./kube-apiserver/cert.js";
import { apiGroupFor, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from "./kube-apiserver/discovery.js";
import { EXEC_PROTOCOLS, execRequest, serveExec, type ExecRecord } from "./kube-apiserver/exec.js";
import { apiVersionOf, findResource, type KubeObject, type ResourceDef } from "./kube-apiserver/resources.js";
import { openApiV3Document, openApiV3Root } from "./kube-apiserver/openapi.js";
import { decodeProtobufObject } from "./kube-apiserver/protobuf.js";
import { seedObjects } from "./kube-apiserver/seed.js";
import { failure, notFound, sendJson, sendStatus, type Status } from "./kube-apiserver/status.js";
import { Store, type StoreEvent } from "./kube-apiserver/store.js";
import { table, tableContentType, tableVersionAccepted, type IncludeObject } from "./kube-apiserver/table.js";

export { SEED_SECRET_VALUES } from "./kube-apiserver/seed.js";
export type { KubeObject } from "./kube-apiserver/resources.js";
export type { ExecRecord } from "./kube-apiserver/exec.js";

export interface RecordedRequest {
  method: string;
  /** URL path without the query */
  path: string;
  /** raw query string without "?" ("" if none) */
  query: string;
  params: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** Date.now() when the request arrived */
  time: number;
  /** request body (create/update/patch) as text, once read */
  body?: string;
  /** the same body as bytes (protobuf bodies are not text) */
  rawBody?: Buffer;
  /** the Upgrade header of an upgrade request ("websocket", "SPDY/3.1") */
  upgrade?: string;
  /** the status code answered (101 for an accepted WebSocket), once answered */
  status?: number;
}

export interface KubeApiServerOptions {
  /** default: any free port */
  port?: number;
  /** the bearer token clients must present; default random */
  token?: string;
  /** how often a followed log (logs -f) gets a new line; default 200 ms */
  logFollowIntervalMs?: number;
  /** end a followed log after this many new lines; default never (until the client goes away) */
  logFollowLines?: number;
}

export interface KubeApiServer {
  /** https://127.0.0.1:PORT */
  url: string;
  port: number;
  /** the server's self-signed certificate: a client's CA */
  caPem: string;
  token: string;
  /** every request received, in arrival order, authorized or not */
  requests: RecordedRequest[];
  /** every exec session served */
  execs: ExecRecord[];
  saw(predicate: (r: RecordedRequest) => boolean): boolean;
  /** requests with this method (or "*") whose path starts with pathPrefix */
  count(method: string, pathPrefix: string): number;
  clearRequests(): void;
  /** direct state access for tests; changes reach watchers like API writes do */
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
  list(resource: string, namespace?: string): KubeObject[];
  create(resource: string, object: KubeObject): KubeObject;
  update(resource: string, object: KubeObject): KubeObject;
  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** the store's current resourceVersion */
  resourceVersion(): string;
  close(): Promise<void>;
}

export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const token = opts.token ?? randomBytes(24).toString("base64url");
  const { certPem, keyPem } = selfSignedCert();
  const store = new Store();
  for (const { resource, object } of seedObjects()) store.create(resource, object);
  const requests: RecordedRequest[] = [];
  const execs: ExecRecord[] = [];
  const ctx: Ctx = { store, opts, address: "" };

  const server: Server = createServer({ key: keyPem, cert: certPem }, (req, res) => {
    const rec = record(requests, req);
    res.on("finish", () => (rec.status = res.statusCode));
    if (!authorized(req, token)) return sendStatus(res, failure(401, "Unauthorized", "Unauthorized"));
    handle(ctx, req, res, rec).catch((err: unknown) => {
      if (!res.headersSent) sendStatus(res, failure(500, "InternalError", `Internal error occurred: ${String(err)}`));
      else res.destroy();
    });
  });

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const rec = record(requests, req);
    rec.upgrade = req.headers.upgrade;
    const reject = (s: Status) => {
      rec.status = s.code;
      rejectUpgrade(socket, s);
    };
    if (!authorized(req, token)) return reject(failure(401, "Unauthorized", "Unauthorized"));
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/exec$/.exec(rec.path);
    if (!m) return reject(failure(404, "NotFound", `the server could not find the requested resource`));
    const [, namespace, name] = m as unknown as [string, string, string];
    if (!/^websocket$/i.test(req.headers.upgrade ?? "")) {
      // kubectl falls back to SPDY only when the WebSocket upgrade failed: reaching this is a stand-in bug
      return reject(failure(400, "BadRequest", `this stand-in serves exec over WebSocket only, not ${rec.upgrade}`));
    }
    if (!store.get("pods", namespace, name)) return reject(notFound("pods", "", name));
    const offered = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((s) => s.trim());
    const protocol = EXEC_PROTOCOLS.find((p) => offered.includes(p));
    if (!protocol) {
      return reject(failure(400, "BadRequest", `none of the offered subprotocols [${offered}] is served`));
    }
    const exec: ExecRecord = { ...execRequest(rec.params), protocol, resizes: [], stdinClosed: false };
    wss.handleUpgrade(req, socket, head, (ws) => {
      rec.status = 101;
      execs.push(exec);
      serveExec(ws, exec);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  ctx.address = `127.0.0.1:${port}`;

  const must = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(what);
    return v;
  };
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    caPem: certPem,
    token,
    requests,
    execs,
    saw: (p) => requests.some(p),
    count: (method, prefix) =>
      requests.filter((r) => (method === "*" || r.method === method) && r.path.startsWith(prefix)).length,
    clearRequests: () => void requests.splice(0),
    get: (resource, ns, name) => store.get(resource, ns, name),
    list: (resource, ns) => store.list(resource, ns),
    create: (resource, o) => must(store.create(resource, withDefaults(resource, o)), `${o.metadata.name} exists`),
    update: (resource, o) => must(store.update(resource, o), `no ${resource} ${o.metadata.name}`),
    remove: (resource, ns, name) =>
      resource === "namespaces" ? deleteNamespace(store, name) : store.delete(resource, ns, name),
    resourceVersion: () => store.resourceVersion,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

interface Ctx {
  store: Store;
  opts: KubeApiServerOptions;
  /** host:port, for APIVersions.serverAddressByClientCIDRs */
  address: string;
}

function record(requests: RecordedRequest[], req: IncomingMessage): RecordedRequest {
  const url = new URL(req.url ?? "/", "https://stand-in");
  const rec: RecordedRequest = {
    method: req.method ?? "GET",
    path: url.pathname,
    query: url.search.replace(/^\?/, ""),
    params: url.searchParams,
    headers: req.headers,
    time: Date.now(),
  };
  requests.push(rec);
  return rec;
}

function authorized(req: IncomingMessage, token: string): boolean {
  return req.headers.authorization === `Bearer ${token}`;
}

function rejectUpgrade(socket: Duplex, s: Status): void {
  const body = JSON.stringify(s);
  const reason = { 400: "Bad Request", 401: "Unauthorized", 404: "Not Found" }[s.code ?? 400] ?? "Error";
  socket.end(
    `HTTP/1.1 ${s.code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`,
  );
}

const isStatus = (o: KubeObject | Status): o is Status => o.kind === "Status" && o.apiVersion === "v1" && "status" in o;

const JSON_TYPES = ["application/json", "application/merge-patch+json", "application/strategic-merge-patch+json"];

/**
 * The object a create/update body carries: JSON, or Kubernetes protobuf for the few kinds kubectl 1.33's typed
 * `create` commands send that way (kube-apiserver/protobuf.ts). Anything else is a 415, as from the real server.
 */
async function readObject(req: IncomingMessage, rec: RecordedRequest): Promise<KubeObject | Status> {
  const type = (req.headers["content-type"] ?? "application/json").split(";")[0]?.trim() ?? "";
  const body = await readBody(req, rec);
  if (type === "application/vnd.kubernetes.protobuf") {
    const o = decodeProtobufObject(rec.rawBody ?? Buffer.alloc(0));
    if (o) return o;
  } else if (JSON_TYPES.includes(type)) {
    const o = parseObject(body);
    return o ?? failure(400, "BadRequest", "the body of the request was not a JSON object with metadata");
  }
  return failure(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format - accepted media types include: ${JSON_TYPES.join(", ")}`,
  );
}

async function readBody(req: IncomingMessage, rec: RecordedRequest): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  rec.rawBody = Buffer.concat(chunks);
  rec.body = rec.rawBody.toString("utf8");
  return rec.body;
}

async function handle(ctx: Ctx, req: IncomingMessage, res: ServerResponse, rec: RecordedRequest): Promise<void> {
  const { path, method } = rec;
  if (method === "GET") {
    const discovery = discoveryDocument(ctx, path);
    if (discovery !== undefined) return sendJson(res, 200, discovery);
    if (["/healthz", "/livez", "/readyz"].includes(path)) {
      res.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
      return;
    }
  }
  const target = parseResourcePath(path);
  if (!target) return sendStatus(res, failure(404, "NotFound", "the server could not find the requested resource"));
  const { def, namespace, name, subresource } = target;

  if (subresource === "log" && def.resource === "pods" && name) {
    if (method !== "GET") return sendStatus(res, methodNotAllowed(method));
    return serveLogs(ctx, req, res, rec, namespace, name);
  }
  if ((subresource === "exec" || subresource === "attach") && def.resource === "pods") {
    return sendStatus(res, failure(400, "BadRequest", "Upgrade request required"));
  }
  if (subresource && subresource !== "status") {
    return sendStatus(res, failure(404, "NotFound", "the server could not find the requested resource"));
  }

  if (name === undefined) {
    if (method === "GET") return serveList(ctx, req, res, rec, def, namespace);
    if (method === "POST") return serveCreate(ctx, req, res, rec, def, namespace);
    return sendStatus(res, methodNotAllowed(method));
  }
  if (method === "GET") {
    const o = ctx.store.get(def.resource, namespace, name);
    if (!o) return sendStatus(res, notFound(def.resource, def.group, name));
    return sendObject(res, req, rec, def, o);
  }
  if (method === "DELETE") {
    if (!ctx.store.get(def.resource, namespace, name)) return sendStatus(res, notFound(def.resource, def.group, name));
    if (isDryRun(rec)) return sendJson(res, 200, ctx.store.get(def.resource, namespace, name));
    const gone =
      def.resource === "namespaces"
        ? deleteNamespace(ctx.store, name)
        : ctx.store.delete(def.resource, namespace, name);
    return sendJson(res, 200, gone);
  }
  if (method === "PUT" || method === "PATCH") return serveUpdate(ctx, req, res, rec, def, namespace, name);
  return sendStatus(res, methodNotAllowed(method));
}

function methodNotAllowed(method: string): Status {
  return failure(
    405,
    "MethodNotAllowed",
    `the server does not allow this method on the requested resource (${method})`,
  );
}

function discoveryDocument(ctx: Ctx, path: string): unknown {
  if (path === "/version") return SERVER_VERSION;
  if (path === "/api") return apiVersions(ctx.address);
  if (path === "/apis") return apiGroupList();
  if (path === "/openapi/v3") return openApiV3Root();
  if (path.startsWith("/openapi/v3/")) return openApiV3Document(path.slice("/openapi/v3/".length));
  let m = /^\/api\/(v1)$/.exec(path);
  if (m) return apiResourceList("", m[1] as string);
  m = /^\/apis\/([^/]+)$/.exec(path);
  if (m) return apiGroupFor(m[1] as string);
  m = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
  if (m) return apiResourceList(m[1] as string, m[2] as string);
  return undefined;
}

interface ResourceTarget {
  def: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/**
 * /api/v1/R[/NAME[/SUB]] and /api/v1/namespaces/NS/R[/NAME[/SUB]] (likewise under /apis/G/V). `namespaces/NS/X` is
 * a namespaced resource X in NS when X is one, else subresource X of namespace NS.
 */
function parseResourcePath(path: string): ResourceTarget | undefined {
  const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(.+)$/.exec(path);
  if (!m) return undefined;
  const group = m[2] ?? "";
  const version = (m[1] ?? m[3]) as string;
  const segs = (m[4] as string).split("/").map(decodeURIComponent);
  if (segs[0] === "namespaces" && segs.length >= 3) {
    const def = findResource(group, version, segs[2] as string);
    if (def?.namespaced) {
      if (segs.length > 5) return undefined;
      return { def, namespace: segs[1], name: segs[3], subresource: segs[4] };
    }
  }
  const def = findResource(group, version, segs[0] as string);
  if (!def || segs.length > 3) return undefined;
  if (def.namespaced && segs.length > 1) return undefined; // a namespaced object needs its namespace in the path
  return { def, name: segs[1], subresource: segs[2] };
}

/** fieldSelector / labelSelector with equality terms (`a=b`, `a==b`, `a!=b`), which is all kubectl sends here. */
function selectorMatcher(rec: RecordedRequest): (o: KubeObject) => boolean {
  const terms = (s: string | null) =>
    (s ?? "")
      .split(",")
      .filter(Boolean)
      .map((t) => {
        const m = /^([^!=]+)(!=|==|=)(.*)$/.exec(t);
        return m ? { key: m[1] as string, neg: m[2] === "!=", value: m[3] as string } : undefined;
      });
  const fields = terms(rec.params.get("fieldSelector"));
  const labels = terms(rec.params.get("labelSelector"));
  return (o) =>
    fields.every((t) => t !== undefined && (fieldValue(o, t.key) === t.value) !== t.neg) &&
    labels.every((t) => t !== undefined && (o.metadata.labels?.[t.key] === t.value) !== t.neg);
}

function fieldValue(o: KubeObject, key: string): string | undefined {
  let v: unknown = o;
  for (const p of key.split(".")) v = v && typeof v === "object" ? (v as Record<string, unknown>)[p] : undefined;
  return v === undefined ? undefined : String(v);
}

function includeObject(rec: RecordedRequest): IncludeObject {
  const v = rec.params.get("includeObject");
  return v === "None" || v === "Object" ? v : "Metadata";
}

const isWatch = (rec: RecordedRequest) => ["true", "1"].includes(rec.params.get("watch") ?? "");
const isDryRun = (rec: RecordedRequest) => rec.params.getAll("dryRun").includes("All");

function sendObject(res: ServerResponse, req: IncomingMessage, rec: RecordedRequest, def: ResourceDef, o: KubeObject) {
  const tv = tableVersionAccepted(req.headers.accept);
  if (!tv) return sendJson(res, 200, o);
  const t = table(def, [o], { version: tv, include: includeObject(rec), resourceVersion: o.metadata.resourceVersion });
  return sendJson(res, 200, t, tableContentType(tv));
}

function serveList(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  rec: RecordedRequest,
  def: ResourceDef,
  namespace: string | undefined,
): void {
  if (isWatch(rec)) return serveWatch(ctx, req, res, rec, def, namespace);
  const match = selectorMatcher(rec);
  const items = ctx.store.list(def.resource, namespace).filter(match);
  const resourceVersion = ctx.store.resourceVersion;
  const tv = tableVersionAccepted(req.headers.accept);
  if (tv) {
    const t = table(def, items, { version: tv, include: includeObject(rec), resourceVersion });
    return sendJson(res, 200, t, tableContentType(tv));
  }
  sendJson(res, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion }, items });
}

/**
 * A watch: newline-delimited `{"type","object"}` events over a chunked response that stays open. Without a
 * resourceVersion (or "0") it starts with ADDED for every current object; from resourceVersion N it replays the
 * changes after N. Asked for a Table, each event's object is a one-row Table (the column definitions in the first).
 */
function serveWatch(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  rec: RecordedRequest,
  def: ResourceDef,
  namespace: string | undefined,
): void {
  const match = selectorMatcher(rec);
  const tv = tableVersionAccepted(req.headers.accept);
  const include = includeObject(rec);
  const inScope = (o: KubeObject) => (namespace === undefined || o.metadata.namespace === namespace) && match(o);
  res.writeHead(200, { "Content-Type": tv ? tableContentType(tv) : "application/json", "Cache-Control": "no-cache" });
  res.flushHeaders();
  let first = true;
  const send = (type: string, o: KubeObject) => {
    const object = tv
      ? table(def, [o], { version: tv, include, resourceVersion: o.metadata.resourceVersion, headers: first })
      : o;
    first = false;
    res.write(`${JSON.stringify({ type, object })}\n`);
  };
  const from = rec.params.get("resourceVersion");
  if (!from || from === "0") {
    for (const o of ctx.store.list(def.resource, namespace).filter(match)) send("ADDED", o);
  } else {
    for (const e of ctx.store.eventsSince(Number(from)))
      if (e.resource === def.resource && inScope(e.object)) send(e.type, e.object);
  }
  const unsubscribe = ctx.store.subscribe((e: StoreEvent) => {
    if (e.resource === def.resource && inScope(e.object)) send(e.type, e.object);
  });
  const timeout = Number(rec.params.get("timeoutSeconds") ?? 0);
  const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
  res.on("close", () => {
    unsubscribe();
    clearTimeout(timer);
  });
}

function withDefaults(resource: string, o: KubeObject): KubeObject {
  const out = structuredClone(o);
  if (resource === "pods") {
    const status = (out.status ?? {}) as Record<string, unknown>;
    out.status = { phase: "Running", podIP: "10.244.9.9", hostIP: "10.0.0.1", ...status };
  }
  if (resource === "secrets" && out.stringData && typeof out.stringData === "object") {
    // the server folds stringData into data, as base64
    const data = { ...((out.data as Record<string, string> | undefined) ?? {}) };
    for (const [k, v] of Object.entries(out.stringData)) data[k] = Buffer.from(String(v)).toString("base64");
    out.data = data;
    delete out.stringData;
  }
  if (resource === "namespaces") out.status = { phase: "Active", ...((out.status as object | undefined) ?? {}) };
  return out;
}

function parseObject(text: string): KubeObject | undefined {
  try {
    const o = JSON.parse(text) as KubeObject;
    return o && typeof o === "object" && o.metadata && typeof o.metadata === "object" ? o : undefined;
  } catch {
    return undefined;
  }
}

async function serveCreate(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  rec: RecordedRequest,
  def: ResourceDef,
  namespace: string | undefined,
): Promise<void> {
  const o = await readObject(req, rec);
  if (isStatus(o)) return sendStatus(res, o);
  if (def.namespaced && namespace === undefined) return sendStatus(res, methodNotAllowed("POST"));
  if (o.metadata.namespace && def.namespaced && o.metadata.namespace !== namespace) {
    const msg = "the namespace of the provided object does not match the namespace sent on the request";
    return sendStatus(res, failure(400, "BadRequest", msg));
  }
  if (!o.metadata.name && o.metadata.generateName) {
    o.metadata.name = `${o.metadata.generateName}${randomBytes(3).toString("hex").slice(0, 5)}`;
  }
  if (!o.metadata.name) {
    const msg = `${def.kind} "" is invalid: metadata.name: Required value: name or generateName is required`;
    return sendStatus(res, failure(422, "Invalid", msg, { kind: def.kind }));
  }
  if (def.namespaced) {
    if (!ctx.store.get("namespaces", undefined, namespace as string)) {
      return sendStatus(res, notFound("namespaces", "", namespace as string));
    }
    o.metadata.namespace = namespace;
  } else {
    delete o.metadata.namespace;
  }
  o.apiVersion = apiVersionOf(def);
  o.kind = def.kind;
  if (ctx.store.get(def.resource, namespace, o.metadata.name)) {
    const msg = `${def.group ? `${def.resource}.${def.group}` : def.resource} "${o.metadata.name}" already exists`;
    return sendStatus(res, failure(409, "AlreadyExists", msg, { name: o.metadata.name, kind: def.resource }));
  }
  if (isDryRun(rec)) return sendJson(res, 201, withDefaults(def.resource, o));
  sendJson(res, 201, ctx.store.create(def.resource, withDefaults(def.resource, o)));
}

/** PUT replaces; PATCH applies a JSON merge patch (also for strategic-merge-patch, which is the same on plain maps). */
async function serveUpdate(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  rec: RecordedRequest,
  def: ResourceDef,
  namespace: string | undefined,
  name: string,
): Promise<void> {
  const current = ctx.store.get(def.resource, namespace, name);
  let next: KubeObject | undefined;
  if (rec.method === "PUT") {
    const o = await readObject(req, rec);
    if (isStatus(o)) return sendStatus(res, o);
    next = o;
  } else {
    const body = await readBody(req, rec);
    const type = (req.headers["content-type"] ?? "").split(";")[0];
    if (type !== "application/merge-patch+json" && type !== "application/strategic-merge-patch+json") {
      return sendStatus(res, failure(415, "UnsupportedMediaType", `the stand-in does not apply ${type} patches`));
    }
    try {
      next = mergePatch(current, JSON.parse(body)) as KubeObject;
    } catch {
      return sendStatus(res, failure(400, "BadRequest", "the patch is not JSON"));
    }
  }
  if (!current) return sendStatus(res, notFound(def.resource, def.group, name));
  if (!next?.metadata) return sendStatus(res, failure(400, "BadRequest", "the body of the request was not an object"));
  const sentVersion = rec.method === "PUT" ? next.metadata.resourceVersion : undefined;
  if (sentVersion && sentVersion !== current.metadata.resourceVersion) {
    const msg = `Operation cannot be fulfilled on ${def.resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`;
    return sendStatus(res, failure(409, "Conflict", msg, { name, kind: def.resource }));
  }
  next.metadata = { ...next.metadata, name, namespace: def.namespaced ? namespace : undefined };
  next.apiVersion = apiVersionOf(def);
  next.kind = def.kind;
  if (isDryRun(rec)) return sendJson(res, 200, withDefaults(def.resource, next));
  sendJson(res, 200, ctx.store.update(def.resource, withDefaults(def.resource, next)));
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === "object" && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Deleting a namespace deletes what is in it (the real server finalizes asynchronously; here it is immediate). */
function deleteNamespace(store: Store, name: string): KubeObject | undefined {
  for (const d of ["pods", "secrets", "configmaps", "deployments"]) {
    for (const o of store.list(d, name)) store.delete(d, name, o.metadata.name);
  }
  return store.delete("namespaces", undefined, name);
}

/**
 * pods/NAME/log: a few lines as text/plain; with follow=true one more every logFollowIntervalMs until the client
 * goes away (or logFollowLines more have been sent).
 */
function serveLogs(
  ctx: Ctx,
  _req: IncomingMessage,
  res: ServerResponse,
  rec: RecordedRequest,
  namespace: string | undefined,
  name: string,
): void {
  const pod = ctx.store.get("pods", namespace, name);
  if (!pod) return sendStatus(res, notFound("pods", "", name));
  const containers = ((pod.spec as { containers?: { name: string }[] } | undefined)?.containers ?? []).map(
    (c) => c.name,
  );
  const container = rec.params.get("container") ?? containers[0] ?? "main";
  if (!containers.includes(container)) {
    const msg = `container ${container} is not valid for pod ${name}`;
    return sendStatus(res, failure(400, "BadRequest", msg));
  }
  const timestamps = rec.params.get("timestamps") === "true";
  const line = (i: number) =>
    `${timestamps ? `${new Date().toISOString()} ` : ""}[${namespace}/${name}/${container}] log line ${i}\n`;
  const initial = 5;
  const tail = Number(rec.params.get("tailLines") ?? initial);
  res.writeHead(200, { "Content-Type": "text/plain", "Cache-Control": "no-cache" });
  for (let i = Math.max(1, initial - tail + 1); i <= initial; i++) res.write(line(i));
  if (!["true", "1"].includes(rec.params.get("follow") ?? "")) {
    res.end();
    return;
  }
  res.flushHeaders();
  let next = initial + 1;
  const limit = ctx.opts.logFollowLines;
  const timer = setInterval(() => {
    res.write(line(next++));
    if (limit !== undefined && next > initial + limit) {
      clearInterval(timer);
      res.end();
    }
  }, ctx.opts.logFollowIntervalMs ?? 200);
  res.on("close", () => clearInterval(timer));
}
