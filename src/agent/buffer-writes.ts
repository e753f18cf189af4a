import type { Duplex } from "node:stream";

/** Writable hands `_write`/`_writev` "buffer" as the encoding of a Buffer chunk. */
type ChunkEncoding = BufferEncoding | "buffer";
type WriteChunk = { chunk: unknown; encoding: ChunkEncoding };

/**
 * Makes an HTTP/2 stream take only Buffers. On Node 20, string chunks written to an Http2Stream can reach the peer
 * as garbage: node:http writes a message head as a latin1 string, and through a tunnel stream the head of a POST
 * (and of every response) arrived with its first bytes overwritten (the agent's parser saw "Invalid method", the
 * gateway "Expected HTTP/"). Buffers arrive intact, so strings are turned into Buffers before the stream sees them.
 */
export function buffersOnly<T extends Duplex>(stream: T): T {
  const s = stream as unknown as {
    _write(chunk: unknown, encoding: ChunkEncoding, cb: (err?: Error | null) => void): void;
    _writev?: ((chunks: WriteChunk[] & { allBuffers?: boolean }, cb: (err?: Error | null) => void) => void) | null;
  };
  const write = s._write;
  s._write = function (this: unknown, chunk, encoding, cb) {
    write.call(this, typeof chunk === "string" ? Buffer.from(chunk, encoding as BufferEncoding) : chunk, "buffer", cb);
  };
  const writev = s._writev;
  if (writev) {
    s._writev = function (this: unknown, chunks, cb) {
      const buffers: WriteChunk[] & { allBuffers?: boolean } = chunks.map(({ chunk, encoding }) => ({
        chunk: typeof chunk === "string" ? Buffer.from(chunk, encoding as BufferEncoding) : chunk,
        encoding: "buffer",
      }));
      buffers.allBuffers = true;
      writev.call(this, buffers, cb);
    };
  }
  return stream;
}
