import type { Agent } from "node:http";
import type { Socket } from "node:net";
import { AuthError } from "../../core/identity/errors.js";
import type { Identity } from "../../core/identity/identity.js";
import type { IdentityVerifier } from "../../core/identity/verifier.js";
import type { Gate, GatedSession } from "../../core/session/gate.js";
import type { TargetClient } from "./target-client.js";

export interface ClientSessionsDeps {
  gate: Gate;
  verifier: IdentityVerifier;
  /** Tracks a session's close work (session.end, recording seal) until the listener closes. */
  track(closing: Promise<void>): void;
  log(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * The gated sessions of one client TCP connection. A session is one identity using one connection over one client
 * connection: its requests (keep-alive) share it, and it ends when the client connection closes. A bearer token is
 * verified once per client connection, and its expiry checked at every request.
 */
export class ClientSessions {
  readonly #identities = new Map<string, Promise<Identity>>();
  readonly #sessions = new Map<string, Promise<GatedSession>>();
  /** Each session's keep-alive sockets to its target, closed with it. */
  readonly #pools = new Map<GatedSession, Agent>();
  #closed = false;

  constructor(
    private readonly deps: ClientSessionsDeps,
    readonly socket: Socket,
  ) {
    socket.once("close", () => this.close("client closed"));
  }

  get clientAddress(): string {
    return `${this.socket.remoteAddress ?? "?"}:${this.socket.remotePort ?? "?"}`;
  }

  /** Throws AuthError (the token) or SessionRefusedError (the connection). */
  async session(token: string, connection: string, protocol: "http" | "kubernetes"): Promise<GatedSession> {
    const identity = await this.#identity(token);
    const key = `${protocol}\0${connection}\0${token}`;
    let session = this.#sessions.get(key);
    if (!session) {
      session = this.deps.gate.openSession({
        identity,
        connection,
        protocol,
        clientAddress: this.clientAddress,
      });
      this.#sessions.set(key, session);
      // a refused session is not kept: the next request is judged (and recorded) again
      session.catch(() => {
        this.#sessions.delete(key);
      });
      // the client connection closed while the session was opening: it ends too (close() tracks its work)
      if (this.#closed) this.close("client closed").catch(() => undefined);
    }
    return session;
  }

  async #identity(token: string): Promise<Identity> {
    let pending = this.#identities.get(token);
    if (!pending) {
      pending = this.deps.verifier.verify(token);
      this.#identities.set(token, pending);
      pending.catch(() => {
        this.#identities.delete(token);
      });
    }
    const identity = await pending;
    if (identity.expiresAt && identity.expiresAt.getTime() <= Date.now()) {
      this.#identities.delete(token);
      throw new AuthError("expired", "token expired");
    }
    return identity;
  }

  /** The session's pool of target sockets (see TargetClient.pool). */
  pool(session: GatedSession, target: TargetClient): Agent {
    let pool = this.#pools.get(session);
    if (!pool) this.#pools.set(session, (pool = target.pool(session)));
    return pool;
  }

  /** Ends every session of this client connection (once); their evidence is tracked until written. */
  close(reason: string): Promise<void> {
    this.#closed = true;
    for (const pool of this.#pools.values()) pool.destroy();
    this.#pools.clear();
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    const work = Promise.allSettled(
      sessions.map(async (s) => {
        const session = await s.catch(() => undefined);
        await session?.close(reason);
      }),
    ).then((results) => {
      for (const r of results)
        if (r.status === "rejected")
          this.deps.log("http: a session's end could not be recorded", { err: String(r.reason) });
    });
    this.deps.track(work);
    return work;
  }
}
