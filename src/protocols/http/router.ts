import type { ConnectionConfig, HttpConnectionConfig, KubernetesConnectionConfig } from "../../core/policy/schema.js";

export type HttpFamilyConnection = HttpConnectionConfig | KubernetesConnectionConfig;

/** Where a request goes: the connection it names, and the request target (path + query) the target sees. */
export type Route = { connection: string; config?: HttpFamilyConnection | undefined; path: string } | { error: string };

/**
 * Finds the connection a request is for. A connection with `host:` gets every request whose Host header names it,
 * path untouched; otherwise the first path segment names the connection and is removed
 * (`/app-api/v1/users?x=1` → `app-api`, `/v1/users?x=1`). The connection is looked up but not judged here: the
 * gate refuses unknown connections and those of another type, with evidence.
 */
export class Router {
  readonly #byName = new Map<string, ConnectionConfig>();
  readonly #byHost = new Map<string, HttpFamilyConnection>();

  constructor(connections: readonly ConnectionConfig[]) {
    for (const c of connections) {
      this.#byName.set(c.name, c);
      if ((c.type === "http" || c.type === "kubernetes") && c.host) this.#byHost.set(c.host.toLowerCase(), c);
    }
  }

  route(url: string, host: string | undefined): Route {
    // an absolute-form request target (a client that thinks we are a forward proxy) is not ours to serve
    if (!url.startsWith("/")) return { error: "the request target must be a path (origin form)" };
    if (host && this.#byHost.size > 0) {
      const byHost = this.#byHost.get(stripPort(host).toLowerCase());
      if (byHost) return { connection: byHost.name, config: byHost, path: url };
    }
    const end = firstSegmentEnd(url);
    const segment = url.slice(1, end);
    if (segment === "") return { error: "name a connection: /<connection>/<path>" };
    let name: string;
    try {
      name = decodeURIComponent(segment);
    } catch {
      return { error: "malformed connection name in the path" };
    }
    const rest = url.slice(end);
    const path = rest.startsWith("/") ? rest : `/${rest}`;
    const config = this.#byName.get(name);
    const family = config && (config.type === "http" || config.type === "kubernetes") ? config : undefined;
    return { connection: name, config: family, path };
  }
}

function firstSegmentEnd(url: string): number {
  for (let i = 1; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 0x2f /* / */ || c === 0x3f /* ? */) return i;
  }
  return url.length;
}

function stripPort(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.lastIndexOf(":");
  return colon >= 0 ? host.slice(0, colon) : host;
}
