import type { ApiCallFact } from "../../policy/facts.js";

/**
 * Kubernetes API request -> ApiCallFact, with the API server's RequestInfo semantics (k8s.io/apiserver
 * endpoints/request), so a rule about `delete namespaces` means what RBAC means by it. Where the two differ on
 * purpose, the comment says why: a path the gateway might read differently from the target (or from a proxy in
 * front of it) is `unparseable`, never a guess, so it can't be misread into something harmless.
 */
export type KubernetesRequest = { call: ApiCallFact } | { unparseable: string };

// RBAC's verbs for the HTTP methods. Any other method (OPTIONS, TRACE, CONNECT...) has no RBAC verb: the API
// server gives it verb "" and rejects it, and no rule could name it, so it is unparseable rather than guessed.
const METHOD_VERBS: Readonly<Record<string, string>> = {
  GET: "get",
  HEAD: "get",
  POST: "create",
  PUT: "update",
  PATCH: "patch",
  DELETE: "delete",
};

// `watch` and `proxy` as a path step after the version are the legacy forms /api/v1/watch/... and /api/v1/proxy/...
const SPECIAL_VERBS = new Set(["watch", "proxy"]);
// namespaces/NS/status and namespaces/NS/finalize are subresources of the namespace, not resources inside it
const NAMESPACE_SUBRESOURCES = new Set(["status", "finalize"]);
// core-group pods subresources that open a stream into a container: the gateway's own verbs
const POD_CONNECT = new Set(["exec", "attach", "portforward", "log"]);
const PROXY_RESOURCES = new Set(["pods", "services", "nodes"]);

// RFC 3986 pchar without percent-encoding and without `;`. Kubernetes names, namespaces, resources and groups never
// need either: a `%` escape is decoded by the API server's Go URL parser (`%61pi` is `api`) and may be decoded a
// second time by a proxy in front (`%252F`), and some servers strip `;params` from a segment, so both would let the
// target read a different path than the one judged here.
const STRICT_SEGMENT = /^[A-Za-z0-9\-._~:@!$&'()*+,=]+$/;
// The proxied remainder after .../proxy is the pod's or service's own path: escapes are legitimate there.
const REMAINDER_SEGMENT = /^[A-Za-z0-9\-._~:@!$&'()*+,=;%]+$/;
// How many times a remainder segment is decoded when looking for a hidden `/`, `\` or dot segment.
const DECODE_ROUNDS = 3;

function unparseable(reason: string): { unparseable: string } {
  return { unparseable: reason };
}

function isDotSegment(s: string): boolean {
  return s === "." || s === "..";
}

/**
 * A proxied path segment stays a single segment however often something decodes it: no `/` or `\` appears, it never
 * becomes `.` or `..` (which a proxy would resolve, climbing out of `.../proxy/` into `.../exec`), and no control
 * character appears.
 */
function remainderProblem(segment: string): string | undefined {
  let text = segment;
  for (let round = 0; round < DECODE_ROUNDS && text.includes("%"); round++) {
    try {
      text = decodeURIComponent(text);
    } catch {
      return "an invalid percent-escape";
    }
    // eslint-disable-next-line no-control-regex
    if (/[/\\\u0000-\u001f\u007f]/.test(text) || isDotSegment(text))
      return "a percent-encoded slash, backslash, dot segment or control character";
  }
  return undefined;
}

/** The segments of the path, or why it is refused. Where the proxied remainder starts is only known later. */
function splitPath(path: string): string[] | { unparseable: string } {
  if (!path.startsWith("/")) return unparseable(`path ${JSON.stringify(path)} does not start with /`);
  if (path === "/") return [];
  // One trailing slash is dropped, as the API server's own splitting does; `//` anywhere else is an empty segment,
  // which proxies collapse (or not) as they please.
  const body = path.endsWith("/") ? path.slice(1, -1) : path.slice(1);
  const segments = body.split("/");
  if (segments.some((s) => s === "")) return unparseable(`path ${JSON.stringify(path)} has an empty segment (//)`);
  // Dot segments are resolved by proxies and clients (RFC 3986 section 5.2.4) but not by the API server.
  if (segments.some(isDotSegment)) return unparseable(`path ${JSON.stringify(path)} has a . or .. segment`);
  return segments;
}

function checkSegments(path: string, segments: readonly string[], remainderStart: number): string | undefined {
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i] as string;
    if (i < remainderStart) {
      if (!STRICT_SEGMENT.test(s))
        return `path ${JSON.stringify(path)}: segment ${JSON.stringify(s)} has a percent-escape or a character a Kubernetes path never carries`;
    } else {
      const problem = REMAINDER_SEGMENT.test(s) ? remainderProblem(s) : "a character a URL path never carries raw";
      if (problem) return `path ${JSON.stringify(path)}: proxied segment ${JSON.stringify(s)} has ${problem}`;
    }
  }
  return undefined;
}

/**
 * The API server's list/watch rule for `?watch=`: the first value decides, and anything but `0` or `false` (any case)
 * is true, so `watch=yes` and even `watch=` are watches, not lists.
 */
function isWatch(query: URLSearchParams): boolean {
  const value = query.get("watch");
  if (value === null) return false;
  const v = value.toLowerCase();
  return v !== "0" && v !== "false";
}

/**
 * `kubectl get pod web -w` lists with fieldSelector=metadata.name=web; like the API server, the call then names
 * that object. Only a plain exact match counts (an escaped or odd value names nothing).
 */
function nameFromFieldSelector(query: URLSearchParams): string | undefined {
  const selector = query.get("fieldSelector");
  if (!selector || selector.includes("\\")) return undefined;
  for (const term of selector.split(",")) {
    const m = /^\s*metadata\.name\s*={1,2}\s*(.+?)\s*$/.exec(term);
    if (m && STRICT_SEGMENT.test(m[1] as string) && !isDotSegment(m[1] as string)) return m[1];
  }
  return undefined;
}

/**
 * The facts of one Kubernetes API request. `path` is the request path as sent (not percent-decoded), without the
 * gateway's own prefix and without the query string; `query` is the parsed query string.
 */
export function kubernetesRequestFacts(method: string, path: string, query: URLSearchParams): KubernetesRequest {
  const methodVerb = METHOD_VERBS[method];
  if (methodVerb === undefined) return unparseable(`HTTP method ${JSON.stringify(method)} has no Kubernetes verb`);
  const split = splitPath(path);
  if (!Array.isArray(split)) return split;
  const segments = split;

  // Anything outside /api/VERSION/... and /apis/GROUP/VERSION/... (including the discovery documents /api,
  // /api/v1, /apis, /apis/apps and /apis/apps/v1) is a non-resource request: RBAC's nonResourceURLs.
  const prefix = segments[0];
  const grouped = prefix === "apis";
  if ((prefix !== "api" && !grouped) || segments.length < (grouped ? 4 : 3)) {
    const problem = checkSegments(path, segments, segments.length);
    if (problem) return unparseable(problem);
    // RBAC names a non-resource verb by the lowercase method (post, put...); mapping it like a resource request's
    // keeps it in the policy vocabulary, so a POST to /metrics is never read as a harmless get.
    return { call: { verb: methodVerb, resource: "", path } };
  }

  const group = grouped ? (segments[1] as string) : "";
  const versionAt = grouped ? 2 : 1;
  const version = segments[versionAt] as string;
  let parts = segments.slice(versionAt + 1);
  let start = versionAt + 1; // index in `segments` of parts[0]

  let verb = methodVerb;
  let legacyVerb = false;
  if (SPECIAL_VERBS.has(parts[0] as string)) {
    // the API server refuses /api/v1/watch and /api/v1/proxy with nothing after them
    if (parts.length < 2) return unparseable(`path ${JSON.stringify(path)} names no resource after ${parts[0]}`);
    verb = parts[0] as string;
    legacyVerb = true;
    parts = parts.slice(1);
    start++;
  }

  let namespace: string | undefined;
  if (parts[0] === "namespaces" && parts.length > 1) {
    namespace = parts[1];
    // namespaces/NS/RESOURCE/...: the resource path starts after the namespace; namespaces/NS[/status|finalize] is
    // the namespace object itself, which keeps NS as its namespace too (as the API server's RequestInfo does), so
    // `delete ns prod` falls under a rule scoped to namespace prod
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2] as string)) {
      parts = parts.slice(2);
      start += 2;
    }
  }

  const resource = parts[0] as string;
  let name = parts[1];
  // Legacy /proxy/...: everything after the name is the proxied path (the API server sets no subresource there;
  // it is recorded as `proxy` here so it reads like today's .../NAME/proxy form).
  const subresource = verb === "proxy" && legacyVerb ? (name !== undefined ? "proxy" : undefined) : parts[2];
  let remainderStart = segments.length;
  if (verb === "proxy" && legacyVerb) remainderStart = start + 2;
  else if (subresource === "proxy") remainderStart = start + 3;

  const problem = checkSegments(path, segments, remainderStart);
  if (problem) return unparseable(problem);

  if (name === undefined && verb === "get") {
    verb = isWatch(query) ? "watch" : "list";
    name = nameFromFieldSelector(query);
  } else if (name === undefined && verb === "delete") {
    verb = "deletecollection";
  }

  // Connect-style subresources carry the gateway's own verb whatever the method: kubectl exec is a POST (SPDY) or a
  // GET (WebSocket), and a rule about exec must catch both. Only the core group's pods/services/nodes have them.
  if (group === "" && name !== undefined && subresource !== undefined) {
    if (resource === "pods" && POD_CONNECT.has(subresource)) verb = subresource;
    else if (subresource === "proxy" && PROXY_RESOURCES.has(resource)) verb = "proxy";
  }

  const call: ApiCallFact = { verb, group, version, resource };
  if (namespace !== undefined) call.namespace = namespace;
  if (name !== undefined) call.name = name;
  if (subresource !== undefined) call.subresource = subresource;
  return { call };
}
