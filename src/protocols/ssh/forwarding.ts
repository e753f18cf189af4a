import type ssh2 from "ssh2";
import type { Log } from "../../core/adapter/index.js";
import type { ClientSession } from "./client-session.js";

/**
 * The gateway forwards nothing but session channels: port forwarding (-L, -R), streamlocal, agent (-A) and X11
 * (-X) requests are refused, and each refusal is recorded as `ssh.forward.refused` in the client's session. The
 * refusal stands whether or not its record can be written: a failing evidence store is logged, it never ends the
 * process.
 */
export class ForwardingRefusals {
  constructor(
    private readonly session: ClientSession,
    private readonly log: Log,
  ) {}

  /** Refuses the connection-level forwarding requests of `client` (channels and global requests). */
  watch(client: ssh2.Connection): void {
    client.on("tcpip", (_acc, rej, t) => {
      rej();
      this.record("direct-tcpip", { dest: `${t.destIP}:${t.destPort}` });
    });
    client.on("openssh.streamlocal", (_acc, rej, t) => {
      rej();
      this.record("direct-streamlocal@openssh.com", { dest: t.socketPath });
    });
    client.on("request", (_acc, rej, name, info) => {
      rej?.();
      // ssh2 answers OpenSSH's routine no-more-sessions@openssh.com itself; should it ever reach us, it is no forwarding
      if ((name as string) === "no-more-sessions@openssh.com") return;
      this.record(name, forwardingListen(info));
    });
  }

  /** Records a forwarding request that was refused (nothing of it reaches the target). Never rejects. */
  record(kind: string, data: Record<string, unknown>): void {
    const record = async () => {
      const s = await this.session.settled();
      await s?.audit({ type: "ssh.forward.refused", data: { kind, ...data } });
    };
    record().catch((err: unknown) =>
      this.log("ssh: a refused forwarding request could not be recorded", {
        kind,
        err: String(err),
        session: this.session.session?.id,
      }),
    );
  }
}

/** Where a tcpip-forward / streamlocal-forward request asked the gateway to listen. */
function forwardingListen(info: unknown): Record<string, unknown> {
  const i = (info ?? {}) as { bindAddr?: unknown; bindPort?: unknown; socketPath?: unknown };
  if (typeof i.socketPath === "string") return { listen: i.socketPath };
  if (typeof i.bindAddr === "string") return { listen: `${i.bindAddr}:${String(i.bindPort)}` };
  return {};
}
