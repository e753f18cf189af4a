/**
 * The tunnel between the gateway and an agent, as both ends speak it (docs/agents.md, "The tunnel").
 *
 * The agent dials the gateway's agent listener over TLS and then *serves* HTTP/2 on that socket: roles are reversed,
 * so the gateway, as the HTTP/2 client, opens one stream per target connection and HTTP/2 gives each stream its own
 * flow control (one slow stream never stalls the others). Nothing is sent before HTTP/2 starts:
 *
 * 1. the gateway asks `GET /v1/hello`; the agent answers with its name, version, token, the connections it serves
 *    and its capabilities (JSON);
 * 2. the gateway checks the token against the SHA-256 in its config and answers `POST /v1/welcome` with what it
 *    accepted, or with the reason it refused (then it closes);
 * 3. each target stream is a `CONNECT` to the target's host:port naming the connection; the agent dials only the
 *    target it was configured with for that connection, answers 200, and relays bytes both ways;
 * 4. for a connection with `secrets: agent`, the gateway asks `POST /v1/credential` for each login step that needs
 *    the secret (a credential oracle): the gateway keeps driving the protocol, the agent computes an md5 response,
 *    a SCRAM proof or an SSH signature, and the secret never crosses the tunnel.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { ConnectionType } from "../core/policy/vocabulary.js";

/** TLS ALPN protocol of the agent listener; a client that does not offer it is not an agent. */
export const TUNNEL_ALPN = "gatehouse-agent/1";

/** Highest tunnel version this build speaks; each end uses the lower of the two. */
export const TUNNEL_VERSION = 1;

export const HELLO_PATH = "/v1/hello";
export const WELCOME_PATH = "/v1/welcome";
export const CREDENTIAL_PATH = "/v1/credential";

/** Headers of a CONNECT stream. */
export const STREAM_HEADERS = {
  connection: "gatehouse-connection",
  purpose: "gatehouse-purpose",
  session: "gatehouse-session",
  /**
   * `http` on the stream of a `secrets: agent` http or kubernetes connection: the agent serves the stream as an HTTP
   * origin (http-origin.ts): the gateway speaks plain HTTP/1.1 on it, the agent makes each request to its target
   * with the credential it holds added, and scrubs that credential from what comes back. Needs `credential:http`.
   */
  origin: "gatehouse-origin",
  /** On a refused stream: why, safe to show a client (no secrets). */
  error: "gatehouse-error",
} as const;

/**
 * What an agent can do. A gateway uses only capabilities both ends name, so a newer gateway keeps working with an
 * older agent (and the other way round): `tcp` is a byte stream to a target (every version has it);
 * `credential:postgres` and `credential:ssh` answer `/v1/credential` for logins with credentials only the agent
 * holds; `credential:http` serves a stream as an HTTP origin that adds the credential it holds to every request
 * (`gatehouse-origin: http`). An agent offers each only when it holds such credentials.
 */
export const CAPABILITIES = ["tcp", "credential:postgres", "credential:ssh", "credential:http"] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** The kind of secret an agent holds for a connection (announced in hello; the secret itself never is). */
export type CredentialKind = "password" | "private_key" | "http";

/**
 * What a `secrets: agent` connection of each type needs from its agent: the capability, and the kind of secret.
 * SSH takes only a private key: a password login would send the password itself to the gateway. HTTP and Kubernetes
 * take an `http` credential (a bearer token, basic login, headers or a client certificate) that the agent adds to
 * each request itself.
 */
export const AGENT_CREDENTIALS: Partial<Record<ConnectionType, { capability: Capability; kind: CredentialKind }>> = {
  postgres: { capability: "credential:postgres", kind: "password" },
  ssh: { capability: "credential:ssh", kind: "private_key" },
  http: { capability: "credential:http", kind: "http" },
  kubernetes: { capability: "credential:http", kind: "http" },
};

/** Most PBKDF2 rounds an agent computes for one SCRAM login, so a hostile target cannot make it burn its CPU. */
export const MAX_SCRAM_ITERATIONS = 1_000_000;

const name = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "invalid name");

/** The agent's answer to hello. Parsed strictly by the gateway: it comes from an unauthenticated peer. */
export const helloSchema = z
  .object({
    tunnel: z.number().int().min(1),
    name,
    /** A process's own id, so several instances of one agent can be told apart. */
    instance: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
    version: z.string().max(64),
    token: z.string().min(1).max(4096),
    connections: z.array(z.string().max(128)).max(10_000),
    capabilities: z.array(z.string().max(64)).max(100),
    /**
     * Which connections the agent holds login credentials for, and of what kind (absent before `credential:*`). A
     * kind this gateway does not know is kept as announced (a newer agent's): no connection needs it, so none is
     * served by it.
     */
    credentials: z.record(z.string().max(128), z.string().max(32)).optional(),
    /**
     * Connections whose requests the agent makes with an http credential it holds (`credential:http`). A list of its
     * own, not an `http` kind in `credentials`: a gateway from before credential:http knows only the kinds
     * `password` and `private_key` there, and would refuse the whole hello for another.
     */
    http_credentials: z.array(z.string().max(128)).max(10_000).optional(),
  })
  .strip();
export type Hello = z.infer<typeof helloSchema>;

/** The gateway's answer: accepted (with what), or refused (with why). */
export const welcomeSchema = z.discriminatedUnion("ok", [
  z.object({
    ok: z.literal(true),
    tunnel: z.number().int().min(1),
    gateway_version: z.string(),
    capabilities: z.array(z.string()),
    heartbeat_ms: z.number().int().positive(),
    /** Connections this agent will be asked for. */
    connections: z.array(z.string()),
    /** Connections it announced that are not assigned to it (`via: agent/NAME` says otherwise or nothing). */
    refused: z.array(z.object({ connection: z.string(), reason: z.string() })),
  }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);
export type Welcome = z.infer<typeof welcomeSchema>;

const base64 = (max: number) =>
  z
    .string()
    .max(Math.ceil(max / 3) * 4)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, "expected base64");

/**
 * One `POST /v1/credential` request: the connection whose credentials answer, and the step. Binary values are
 * base64. Parsed strictly by the agent: it answers only for connections the gateway admitted that have credentials.
 */
export const credentialRequestSchema = z.discriminatedUnion("op", [
  z.object({
    op: z.literal("pg.md5"),
    connection: z.string().max(128),
    user: z.string().min(1).max(1024),
    salt: base64(4),
  }),
  z.object({
    op: z.literal("pg.scram-sha-256"),
    connection: z.string().max(128),
    salt: base64(1024),
    iterations: z.number().int().min(1),
    auth_message: z.string().max(16 * 1024),
  }),
  z.object({ op: z.literal("ssh.identities"), connection: z.string().max(128) }),
  z.object({
    op: z.literal("ssh.sign"),
    connection: z.string().max(128),
    public_key: base64(16 * 1024),
    data: base64(64 * 1024),
    hash: z.enum(["sha1", "sha256", "sha512"]).optional(),
  }),
]);
export type CredentialRequest = z.infer<typeof credentialRequestSchema>;

/** The agent's answer: the step's result, or why it refused (safe to show: it names no secret). */
export const credentialAnswerSchema = z.discriminatedUnion("ok", [
  z.object({
    ok: z.literal(true),
    /** pg.md5 */
    response: z.string().max(64).optional(),
    /** pg.scram-sha-256 */
    scram: z.object({ proof: base64(64), server_signature: base64(64) }).optional(),
    /** ssh.identities */
    keys: z
      .array(base64(16 * 1024))
      .max(100)
      .optional(),
    /** ssh.sign */
    signature: base64(16 * 1024).optional(),
  }),
  z.object({ ok: z.literal(false), error: z.string().max(1024) }),
]);
export type CredentialAnswer = z.infer<typeof credentialAnswerSchema>;

/** Largest credential request or answer either end reads. */
export const MAX_CREDENTIAL_BYTES = 128 * 1024;

/** Largest hello or welcome body either end reads. */
export const MAX_HANDSHAKE_BYTES = 256 * 1024;

/**
 * The SHA-256 pin of a certificate's public key, curl's `--pinnedpubkey` spelling: `sha256//` + base64 of the
 * hash of the DER SubjectPublicKeyInfo. A pin survives re-issuing the certificate with the same key.
 */
export function publicKeyPin(spkiDer: Buffer): string {
  return `sha256//${createHash("sha256").update(spkiDer).digest("base64")}`;
}
