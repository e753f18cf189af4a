/**
 * The agent's side of the credential oracle (`secrets: agent`): the credentials of agent.yaml, and the answers to the
 * gateway's `/v1/credential` requests. The gateway drives each login; the agent computes only the steps that need
 * the secret (a PostgreSQL md5 response, a SCRAM-SHA-256 proof, an SSH signature), so the secret itself never
 * crosses the tunnel. It answers only for connections it serves that the gateway admitted and that have
 * credentials here, and no answer or refusal carries a secret (nor does anything the agent logs).
 */
import ssh2 from "ssh2";
import { md5Response, scramSignatures } from "../protocols/postgres/password.js";
import type { AgentConfig } from "./config.js";
import {
  credentialRequestSchema,
  MAX_SCRAM_ITERATIONS,
  type Capability,
  type CredentialAnswer,
  type CredentialKind,
  type CredentialRequest,
} from "./wire.js";

const OPS: readonly string[] = credentialRequestSchema.options.map((o) => o.shape.op.value);

/** An http or kubernetes connection's credential: what the agent adds to each request it makes (http-origin.ts). */
export interface HttpCredential {
  kind: "http";
  /** Headers set on every request (lowercase names), the Authorization of bearer/token/basic among them. */
  headers: Record<string, string>;
  /** The values scrubbed from everything the target sends back (header values, the bare token and password, the key). */
  secrets: string[];
  clientCert?: string;
  clientKey?: string;
}

type Held =
  | { kind: "password"; password: string }
  | { kind: "private_key"; key: ssh2.ParsedKey; publicKey: Buffer }
  | HttpCredential;

export class AgentCredentials {
  readonly #held = new Map<string, Held>();

  constructor(private readonly config: AgentConfig) {
    for (const c of config.connections) {
      const creds = c.credentials;
      if (creds?.password !== undefined) this.#held.set(c.name, { kind: "password", password: creds.password });
      else if (creds?.private_key !== undefined) {
        const key = ssh2.utils.parseKey(creds.private_key);
        // the config schema already refused a key that does not parse
        if (key instanceof Error) throw new Error(`connection "${c.name}": ${key.message}`);
        this.#held.set(c.name, { kind: "private_key", key, publicKey: key.getPublicSSH() });
      } else if (creds !== undefined) this.#held.set(c.name, httpCredential(creds));
    }
  }

  /** What hello announces: the kind of login credential held per connection (never the credential). */
  kinds(): Record<string, Exclude<CredentialKind, "http">> {
    const kinds: Record<string, Exclude<CredentialKind, "http">> = {};
    for (const [name, held] of this.#held) if (held.kind !== "http") kinds[name] = held.kind;
    return kinds;
  }

  /** What hello announces in `http_credentials`: the connections with an http credential (never the credential). */
  httpConnections(): string[] {
    return [...this.#held].filter(([, held]) => held.kind === "http").map(([name]) => name);
  }

  /** The credential capabilities this agent offers: only for kinds it holds. */
  capabilities(): Capability[] {
    const kinds = new Set([...this.#held.values()].map((h) => h.kind));
    return [
      ...(kinds.has("password") ? (["credential:postgres"] as const) : []),
      ...(kinds.has("private_key") ? (["credential:ssh"] as const) : []),
      ...(kinds.has("http") ? (["credential:http"] as const) : []),
    ];
  }

  /** The http credential held for a connection, if that is what is held for it. */
  http(connection: string): HttpCredential | undefined {
    const held = this.#held.get(connection);
    return held?.kind === "http" ? held : undefined;
  }

  /**
   * Answers one request. `admitted` are the connections the gateway accepted from this agent (welcome); a request
   * for any other connection, of an unknown shape, or for a step its credential cannot do is refused with a reason.
   */
  async answer(body: unknown, admitted: readonly string[]): Promise<CredentialAnswer> {
    const parsed = credentialRequestSchema.safeParse(body);
    if (!parsed.success) {
      const op = (body as { op?: unknown } | null)?.op;
      return refuse(
        typeof op === "string" && !OPS.includes(op)
          ? `unknown credential operation ${JSON.stringify(op.slice(0, 64))}`
          : `malformed credential request (${parsed.error.issues[0]?.path.join(".") || "body"}: ${parsed.error.issues[0]?.message ?? "invalid"})`,
      );
    }
    const request = parsed.data;
    const name = this.config.name;
    if (!admitted.includes(request.connection) || !this.config.connections.some((c) => c.name === request.connection))
      return refuse(`agent ${name} does not serve connection "${request.connection}"`);
    const held = this.#held.get(request.connection);
    if (!held) return refuse(`agent ${name} holds no credentials for connection "${request.connection}"`);
    try {
      return await this.#compute(request, held);
    } catch (err) {
      // a failure of the computation itself (a key the crypto library refuses): its message names no secret
      return refuse(`${request.op} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async #compute(request: CredentialRequest, held: Held): Promise<CredentialAnswer> {
    const wrongKind = (needs: CredentialKind) =>
      refuse(
        `agent ${this.config.name} holds ${held.kind === "http" ? "an http credential" : `a ${held.kind}`} for connection "${request.connection}", and ${request.op} needs a ${needs}`,
      );
    switch (request.op) {
      case "pg.md5": {
        if (held.kind !== "password") return wrongKind("password");
        const salt = Buffer.from(request.salt, "base64");
        if (salt.length !== 4) return refuse("pg.md5: the salt must be 4 bytes");
        return { ok: true, response: md5Response(request.user, held.password, salt) };
      }
      case "pg.scram-sha-256": {
        if (held.kind !== "password") return wrongKind("password");
        if (request.iterations > MAX_SCRAM_ITERATIONS)
          return refuse(
            `the target asks for ${request.iterations} SCRAM iterations; this agent computes at most ${MAX_SCRAM_ITERATIONS}`,
          );
        const salt = Buffer.from(request.salt, "base64");
        if (salt.length === 0) return refuse("pg.scram-sha-256: empty salt");
        // the proof is for the exchange the gateway drives: its server-first message must carry this salt and count
        const attrs = request.auth_message.split(",");
        if (!attrs.includes(`s=${request.salt}`) || !attrs.includes(`i=${request.iterations}`))
          return refuse("pg.scram-sha-256: the auth message does not carry the given salt and iteration count");
        const { proof, serverSignature } = await scramSignatures(
          held.password,
          salt,
          request.iterations,
          request.auth_message,
        );
        return {
          ok: true,
          scram: { proof: proof.toString("base64"), server_signature: serverSignature.toString("base64") },
        };
      }
      case "ssh.identities":
        if (held.kind !== "private_key") return wrongKind("private_key");
        return { ok: true, keys: [held.publicKey.toString("base64")] };
      case "ssh.sign": {
        if (held.kind !== "private_key") return wrongKind("private_key");
        const publicKey = Buffer.from(request.public_key, "base64");
        if (!publicKey.equals(held.publicKey))
          return refuse(`ssh.sign: agent ${this.config.name} holds no such key for "${request.connection}"`);
        const data = Buffer.from(request.data, "base64");
        // the key signs SSH logins and nothing else: the data must be a publickey userauth request for this key
        if (!userauthRequestFor(data, held.publicKey))
          return refuse("ssh.sign: the data is not an SSH publickey login request for this key");
        // only RSA takes a hash choice (rsa-sha2-256/512); other key types have theirs fixed
        const signature = held.key.sign(data, held.key.type === "ssh-rsa" ? request.hash : undefined);
        if (signature instanceof Error) return refuse(`ssh.sign failed: ${signature.message}`);
        return { ok: true, signature: signature.toString("base64") };
      }
    }
  }
}

function httpCredential(c: NonNullable<AgentConfig["connections"][number]["credentials"]>): HttpCredential {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.headers ?? {})) headers[k.toLowerCase()] = v;
  const bearer = c.bearer ?? c.token;
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  if (c.basic !== undefined)
    headers.authorization = `Basic ${Buffer.from(`${c.basic.user}:${c.basic.password}`).toString("base64")}`;
  const secrets = Object.values(headers).flatMap((v) => [v, v.replace(/^(?:Bearer|Basic) +/i, "")]);
  if (c.basic !== undefined) secrets.push(c.basic.password);
  if (c.client_key !== undefined) secrets.push(c.client_key);
  return {
    kind: "http",
    headers,
    secrets,
    ...(c.client_cert !== undefined ? { clientCert: c.client_cert } : {}),
    ...(c.client_key !== undefined ? { clientKey: c.client_key } : {}),
  };
}

function refuse(error: string): CredentialAnswer {
  // the answer's schema bounds the reason: a longer one would make the whole answer unreadable
  return { ok: false, error: error.length > 1000 ? `${error.slice(0, 997)}...` : error };
}

const SSH_MSG_USERAUTH_REQUEST = 50;

/**
 * Whether `data` is what an SSH client signs to log in with `publicKey` (RFC 4252 section 7): string session id,
 * byte SSH_MSG_USERAUTH_REQUEST, string user, string "ssh-connection", string "publickey", boolean TRUE, string
 * algorithm, string the key. So a gateway cannot have the agent sign anything else with the key.
 */
export function userauthRequestFor(data: Buffer, publicKey: Buffer): boolean {
  let off = 0;
  const string = (): Buffer | undefined => {
    if (off + 4 > data.length) return undefined;
    const len = data.readUInt32BE(off);
    if (off + 4 + len > data.length) return undefined;
    const out = data.subarray(off + 4, off + 4 + len);
    off += 4 + len;
    return out;
  };
  const byte = (): number | undefined => (off < data.length ? data[off++] : undefined);
  if (string() === undefined || byte() !== SSH_MSG_USERAUTH_REQUEST || string() === undefined) return false;
  if (string()?.toString() !== "ssh-connection" || string()?.toString() !== "publickey" || byte() !== 1) return false;
  if (string() === undefined) return false;
  const key = string();
  return key !== undefined && key.equals(publicKey) && off === data.length;
}
