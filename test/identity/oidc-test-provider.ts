/**
 * A real OpenID provider (oidc-provider) on 127.0.0.1 for end-to-end tests. Clients use client_credentials with a
 * resource indicator, so the token endpoint issues RFC 9068 `at+jwt` access tokens whose `aud` is the resource.
 */
import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";

export const RESOURCE = "urn:gatehouse:test";
export const OTHER_RESOURCE = "urn:other:service";

export interface TestClient {
  client_id: string;
  client_secret: string;
}

export interface TestProviderOptions {
  /** Extra claims per client id (groups, nbf...). */
  claims?: Record<string, Record<string, unknown>>;
  accessTokenTtlSec?: number;
}

export interface TestProvider {
  issuer: string;
  port: number;
  /** Real HTTP requests the provider received, by path. */
  requests: Map<string, number>;
  clients: Record<string, TestClient>;
  /** POST to the token endpoint with client_credentials. */
  token(clientId: string, resource?: string): Promise<string>;
  /** The provider's public signing JWKS (from its jwks_uri). */
  jwks(): Promise<{ keys: Array<Record<string, unknown>> }>;
  stop(): Promise<void>;
  /** Listens again on the same port with the same keys. */
  start(): Promise<void>;
}

const CLIENT_IDS = ["ci-bot", "future-bot", "deploy-bot"];

/** A free port below 32768 (outside the usual ephemeral range, so clients' own sockets never take it). */
async function listenOnFreePort(server: Server): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 24000 + Math.floor(Math.random() * 8000);
    const ok = await new Promise<boolean>((resolve) => {
      const onError = () => resolve(false);
      server.once("error", onError);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", onError);
        resolve(true);
      });
    });
    if (ok) return (server.address() as AddressInfo).port;
  }
  throw new Error("no free port found");
}

export async function startTestProvider(options: TestProviderOptions = {}): Promise<TestProvider> {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const signingJwk = { ...privateKey.export({ format: "jwk" }), kid: "test-rsa-1", use: "sig", alg: "RS256" };
  const clients: Record<string, TestClient> = {};
  for (const id of CLIENT_IDS) clients[id] = { client_id: id, client_secret: `${id}-secret-0123456789abcdef` };

  const requests = new Map<string, number>();
  let server = createServer();
  const port = await listenOnFreePort(server);
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: Object.values(clients).map((c) => ({
      ...c,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
    })),
    jwks: { keys: [signingJwk] },
    ttl: { ClientCredentials: () => options.accessTokenTtlSec ?? 300 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => ({
          scope: "access",
          audience: resource,
          accessTokenFormat: "jwt",
          accessTokenTTL: options.accessTokenTtlSec ?? 300,
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
    extraTokenClaims: async (_ctx: unknown, token: { clientId?: string }) => {
      const clientId = token.clientId;
      return clientId ? options.claims?.[clientId] : undefined;
    },
  });
  provider.use(async (ctx, next) => {
    requests.set(ctx.path, (requests.get(ctx.path) ?? 0) + 1);
    await next();
  });
  const callback = provider.callback();
  server.on("request", callback);

  const discovery = async (): Promise<{ token_endpoint: string; jwks_uri: string }> =>
    (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
      token_endpoint: string;
      jwks_uri: string;
    };

  return {
    issuer,
    port,
    requests,
    clients,
    async token(clientId, resource = RESOURCE) {
      const client = clients[clientId];
      if (!client) throw new Error(`unknown test client ${clientId}`);
      const { token_endpoint } = await discovery();
      const response = await fetch(token_endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: "Basic " + Buffer.from(`${client.client_id}:${client.client_secret}`).toString("base64"),
        },
        body: new URLSearchParams({ grant_type: "client_credentials", resource, scope: "access" }),
      });
      const body = (await response.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!response.ok || !body.access_token) {
        throw new Error(`token endpoint: ${response.status} ${body.error} ${body.error_description}`);
      }
      return body.access_token;
    },
    async jwks() {
      const { jwks_uri } = await discovery();
      return (await (await fetch(jwks_uri)).json()) as { keys: Array<Record<string, unknown>> };
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // keep-alive sockets would otherwise keep serving a "stopped" provider
        server.closeAllConnections();
      });
    },
    async start() {
      server = createServer(callback);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
      });
    },
  };
}
