import type ssh2 from "ssh2";

/**
 * Patches `channel` (and returns it) against a flow-control bug of ssh2 1.17.0, the latest release (docs/ssh.md
 * "Flow control"; upstream report mscdex/ssh2#1508). Applied to every channel the gateway serves to its clients.
 *
 * A server channel has two writers sharing one SSH window: stdout (the Channel) and stderr (`channel.stderr`).
 * When a write does not fit the window, ssh2 keeps what is left of it and its callback on the channel (`_chunk` /
 * `_chunkcb` for stdout, `_chunkErr` / `_chunkcbErr` for stderr) and sets `_waitWindow`. On CHANNEL_WINDOW_ADJUST
 * it resumes exactly one of them, stdout first if `_chunk` is set, and never clears either record once the write
 * completes. So:
 *  - after one stdout write has waited, `_chunk` stays set for good: the next time stderr waits, the window
 *    adjustment resends those old stdout bytes (the client sees them twice) and calls their callback a second time,
 *    while the stderr write is never resumed (its bytes are lost, or the channel hangs). The second callback is
 *    Node's ERR_MULTIPLE_CALLBACK when no stdout write is in progress, which destroys the channel (ssh2: EOF and
 *    close, without the exit status), or completes a stdout write in progress early;
 *  - when stdout and stderr both wait at once, only stdout is ever resumed.
 * The client side (the gateway's channels to the target) is not affected: its stderr is not writable, and the
 * only write that sets `_waitWindow` there always sets a fresh `_chunk` with it.
 *
 * The fix leaves ssh2's own write code in charge of packets and the window, and takes its record away as soon as
 * a write stalls: what is left of the write moves into this module's per-stream slot, and the channel is left
 * with `_chunk` unset and `_chunkcb` set to `resume`. ssh2's window-adjust handler then calls `resume` (its
 * "no chunk, but a callback" branch), which sends whatever waits on both streams, in alternating order so that
 * neither stream starves the other. Each waiting write is resumed once and its callback called once.
 */
export function fixWindowResume(channel: ssh2.ServerChannel): ssh2.ServerChannel {
  const ch = channel as unknown as Ssh2ServerChannel;
  // a different ssh2 (internals renamed): leave it alone rather than break it; the tests will say so
  if (!("_chunk" in ch && "_chunkErr" in ch && typeof ch.stderr._write === "function")) return channel;
  const stdout: Stream = { write: ch._write.bind(ch) };
  const stderr: Stream = { write: ch.stderr._write.bind(ch.stderr) };
  let first = stdout;

  /** Runs ssh2's write, then moves a record it left (this write stalled) into the stream's slot. */
  const write = (stream: Stream, data: Buffer, cb: WriteCallback) => {
    stream.write(data, null, cb);
    if (ch._chunk && ch._chunkcb) stdout.waiting = { data: ch._chunk, cb: ch._chunkcb };
    if (ch._chunkErr && ch._chunkcbErr) stderr.waiting = { data: ch._chunkErr, cb: ch._chunkcbErr };
    ch._chunk = ch._chunkErr = ch._chunkcbErr = undefined;
    if (stdout.waiting || stderr.waiting) {
      ch._chunkcb = resume;
      ch._waitWindow = true;
    } else {
      ch._chunkcb = undefined;
    }
  };
  /** Called by ssh2 when the window grows while something waits (it has cleared `_waitWindow`). */
  const resume = () => {
    const order = first === stdout ? ([stdout, stderr] as const) : ([stderr, stdout] as const);
    first = order[1];
    for (const stream of order) {
      const waiting = stream.waiting;
      if (!waiting) continue;
      stream.waiting = undefined;
      // sends what fits and calls back when all of it is out, or parks the rest again
      write(stream, waiting.data, waiting.cb);
    }
  };
  ch._write = (data, _encoding, cb) => write(stdout, data, cb);
  ch.stderr._write = (data, _encoding, cb) => write(stderr, data, cb);
  return channel;
}

type WriteCallback = (err?: Error | null) => void;
type WriteFn = (data: Buffer, encoding: BufferEncoding | null, cb: WriteCallback) => void;

/** One of the channel's two writers and the write of it that waits for the window, if any. */
interface Stream {
  write: WriteFn;
  waiting?: { data: Buffer; cb: WriteCallback };
}

/** The ssh2 1.17 Channel internals this module relies on (lib/Channel.js, lib/server.js CHANNEL_WINDOW_ADJUST). */
interface Ssh2ServerChannel {
  _write: WriteFn;
  _waitWindow: boolean;
  _chunk?: Buffer;
  _chunkcb?: WriteCallback;
  _chunkErr?: Buffer;
  _chunkcbErr?: WriteCallback;
  stderr: { _write: WriteFn };
}
