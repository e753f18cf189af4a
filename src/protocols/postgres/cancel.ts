import { randomInt } from "node:crypto";

export interface CancelTarget {
  /** Sends the target's own cancel request for this session's current query. */
  cancel(): Promise<void>;
  /** Called when a cancel was forwarded (for the session's recording). */
  onCancel?: () => void;
}

/**
 * Maps the BackendKeyData the gateway gave a client to the session it belongs to. Clients never see the
 * target's pid/secret: a cancel arrives with our key, and the session forwards the target's key itself.
 * Keys are random per session, so one client cannot guess another's.
 */
export class CancelRegistry {
  readonly #byPid = new Map<number, { secret: number; target: CancelTarget }>();

  /** Registers a session and returns its key; call the returned `release` when the session ends. */
  register(target: CancelTarget): { pid: number; secret: number; release: () => void } {
    let pid: number;
    do pid = randomInt(1, 2 ** 31 - 1);
    while (this.#byPid.has(pid));
    const secret = randomInt(-(2 ** 31), 2 ** 31 - 1);
    this.#byPid.set(pid, { secret, target });
    return {
      pid,
      secret,
      release: () => {
        if (this.#byPid.get(pid)?.target === target) this.#byPid.delete(pid);
      },
    };
  }

  /** Forwards a cancel when the key matches; an unknown key is ignored, as PostgreSQL does. */
  async cancel(pid: number, secret: number): Promise<boolean> {
    const entry = this.#byPid.get(pid);
    if (!entry || entry.secret !== secret) return false;
    entry.target.onCancel?.();
    await entry.target.cancel();
    return true;
  }

  get size(): number {
    return this.#byPid.size;
  }
}
