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
 *    target it was configured with for that connection, answers 200, and relays bytes both ways.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

/** TLS ALPN protocol of the agent listener; a client that does not offer it is not an agent. */
export const TUNNEL_ALPN = "gatehouse-agent/1";

/** Highest tunnel version this build speaks; each end uses the lower of the two. */
export const TUNNEL_VERSION = 1;

export const HELLO_PATH = "/v1/hello";
export const WELCOME_PATH = "/v1/welcome";

/** Headers of a CONNECT stream. */
export const STREAM_HEADERS = {
  connection: "gatehouse-connection",
  purpose: "gatehouse-purpose",
  session: "gatehouse-session",
  /** On a refused stream: why, safe to show a client (no secrets). */
  error: "gatehouse-error",
} as const;

/**
 * What an agent can do. A gateway uses only capabilities both ends name, so a newer gateway keeps working with an
 * older agent (and the other way round): `tcp` is a byte stream to a target (every version has it).
 */
export const CAPABILITIES = ["tcp"] as const;
export type Capability = (typeof CAPABILITIES)[number];

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

/** Largest hello or welcome body either end reads. */
export const MAX_HANDSHAKE_BYTES = 256 * 1024;

/**
 * The SHA-256 pin of a certificate's public key, curl's `--pinnedpubkey` spelling: `sha256//` + base64 of the
 * hash of the DER SubjectPublicKeyInfo. A pin survives re-issuing the certificate with the same key.
 */
export function publicKeyPin(spkiDer: Buffer): string {
  return `sha256//${createHash("sha256").update(spkiDer).digest("base64")}`;
}
