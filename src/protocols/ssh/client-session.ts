import type ssh2 from "ssh2";
import { openTarget, TargetUnreachableError, type Log, type TargetConnector } from "../../core/adapter/index.js";
import type { SshConnectionConfig } from "../../core/policy/schema.js";
import { SessionRefusedError, type Gate, type GatedSession } from "../../core/session/gate.js";
import { parseLoginUser } from "./auth.js";
import { errorText, refuseChannel } from "./channel.js";
import type { Login } from "./login.js";
import { SSH_REFUSALS } from "./refusals.js";
import { connectTarget, TargetError } from "./target.js";

export interface ClientSessionDeps {
  gate: Gate;
  connector: TargetConnector;
  log: Log;
}

/**
 * The gated session and the target login of one client connection, and their end. Opened once the client is ready:
 * the gate checks access and writes `session.start` before the target is dialled. Every channel waits for it
 * (`usable`); a refusal answers each channel with its reason. `finish` ends both exactly once, including a session
 * still being opened when the client left or the gateway stopped.
 */
export class ClientSession {
  #session: GatedSession | undefined;
  #target: ssh2.Client | undefined;
  #refusal: string | undefined;
  /** The exit status channels get while refused: the session refusal's answer, 1 for a target that failed. */
  #refusalStatus = 1;
  #ready: Promise<void> | undefined;
  /** The gate's openSession while it runs (settles to undefined when refused). */
  #opening: Promise<GatedSession | undefined> | undefined;
  #closing: Promise<void> | undefined;

  constructor(
    private readonly deps: ClientSessionDeps,
    private readonly client: ssh2.Connection,
    private readonly clientAddress: string,
    private readonly clientVersion: string,
  ) {}

  /** The session once opened (undefined before, and when refused). */
  get session(): GatedSession | undefined {
    return this.#session;
  }

  /** Opens the session and the target for `login`; channels wait for it through `usable`. */
  open(login: Login): void {
    this.#ready = this.#open(login).catch((err: unknown) => {
      // #open handles its own failures; anything else still refuses every channel, with the cause
      this.#refusal ??= `session failed: ${errorText(err)}`;
      this.deps.log("ssh: session could not be opened", { err: String(err), session: this.#session?.id });
    });
  }

  /** The session once opening has settled, or undefined when it was refused (or never opened). */
  async settled(): Promise<GatedSession | undefined> {
    await this.#ready;
    return this.#session ?? (await this.#opening);
  }

  /** Waits for the session and target; on refusal answers the channel with the reason on stderr. */
  async usable(ch: ssh2.ServerChannel): Promise<{ session: GatedSession; target: ssh2.Client } | undefined> {
    await this.#ready;
    if (this.#session && this.#target && !this.#refusal) return { session: this.#session, target: this.#target };
    refuseChannel(ch, this.#refusal ?? "session is not available", this.#refusalStatus);
    return undefined;
  }

  /** Ends the target login and the session (session.end, recording seal), once; never rejects. */
  finish(reason: string): Promise<void> {
    this.#closing ??= (async () => {
      this.#target?.end();
      // a session still being opened (session.start written, recording started) would otherwise never end
      const s = this.#session ?? (await this.#opening);
      await s
        ?.close(reason)
        .catch((err: unknown) => this.deps.log("ssh: session evidence not sealed", { err: String(err) }));
    })();
    return this.#closing;
  }

  async #open(login: Login): Promise<void> {
    if (!login.accepted || this.#closing) return;
    const { deps } = this;
    const user = parseLoginUser(login.username);
    const opened = deps.gate.openSession({
      identity: login.accepted.identity,
      connection: user.connection,
      protocol: "ssh",
      clientAddress: this.clientAddress,
      data: { ssh_user: login.username, auth_method: login.accepted.method, client_version: this.clientVersion },
    });
    this.#opening = opened.catch(() => undefined);
    let session: GatedSession;
    try {
      session = this.#session = await opened;
    } catch (err) {
      if (err instanceof SessionRefusedError) {
        this.#refusal = err.message;
        this.#refusalStatus = SSH_REFUSALS.session[err.code];
      } else this.#refusal = `session refused: ${String(err)}`;
      return;
    }
    // the client left (or the gateway stopped) meanwhile: finish() closes the session, no target is dialled
    if (this.#closing) {
      this.#refusal = "session ended";
      return;
    }
    const config = sshConfig(session);
    const targetUser = user.targetUser ?? config.target.user;
    try {
      const { socket, oracle } = await openTarget(deps.connector, config, config.target, "session", { session });
      const target = (this.#target = await connectTarget(config.target, targetUser, socket, oracle));
      // finished while dialling: finish() ran target?.end() before there was a target
      if (this.#closing) {
        target.end();
        return;
      }
      target.on("error", (err) => deps.log("ssh: target error", { err: err.message, session: session.id }));
      target.on("close", () => this.client.end());
      await session.audit({ type: "ssh.target", data: { target_user: targetUser, host: config.target.host } });
    } catch (err) {
      this.#refusal =
        err instanceof TargetError || err instanceof TargetUnreachableError
          ? err.message
          : `target unavailable: ${String(err)}`;
      await session.audit({ type: "session.error", data: { reason: this.#refusal } }).catch(() => undefined);
      await this.finish(err instanceof TargetError ? `target ${err.code}` : "target unavailable");
    }
  }
}

/** The SSH settings of a session's connection (openSession refuses a connection of another type). */
export function sshConfig(session: GatedSession): SshConnectionConfig {
  return session.connection.config as SshConnectionConfig;
}
