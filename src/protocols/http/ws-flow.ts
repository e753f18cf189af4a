import WebSocket from "ws";

/** Above this many bytes queued towards a peer, the side feeding it is paused; below LOW it resumes. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

/**
 * Flow control between two WebSockets: `source` is paused (no more reads from its socket) while the messages it
 * produced still queue towards a slow receiver, and for any other reason `hold()` names (a recorder that asks
 * producers to wait), and resumed once nothing holds it. Memory stays bounded whatever the speeds.
 */
export class WsFlow {
  #holds = 0;
  #full = false;

  constructor(private readonly source: WebSocket) {}

  /** Sends to `to`; pauses the source while `to` is backed up. */
  send(to: WebSocket, data: Buffer | string, binary: boolean): void {
    if (to.readyState !== WebSocket.OPEN) return;
    to.send(data, { binary }, () => {
      if (this.#full && to.bufferedAmount < LOW_WATER) {
        this.#full = false;
        this.release();
      }
    });
    if (!this.#full && to.bufferedAmount > HIGH_WATER) {
      this.#full = true;
      this.hold();
    }
  }

  hold(): void {
    if (this.#holds++ === 0) this.source.pause();
  }

  release(): void {
    if (--this.#holds === 0 && this.source.readyState === WebSocket.OPEN) this.source.resume();
  }
}

/**
 * Records one event of a relayed stream (`write` records it and returns the recorder's answer). When the recorder
 * asks producers to wait, the source is held until it caught up; when the recording cannot take the event (its
 * store failed), `lost` ends the relay: nothing unrecorded passes.
 */
export function recordRelayed(
  write: () => boolean,
  recording: { drain(): Promise<void> },
  flow: WsFlow,
  lost: (err: unknown) => void,
): boolean {
  try {
    if (!write()) {
      flow.hold();
      recording.drain().then(
        () => flow.release(),
        (err: unknown) => lost(err),
      );
    }
    return true;
  } catch (err) {
    lost(err);
    return false;
  }
}
