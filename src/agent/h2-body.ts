import type { Readable } from "node:stream";

/** Reads a whole (small) HTTP/2 body, refusing one longer than `max` bytes or slower than `timeoutMs`. */
export function readBody(stream: Readable, max: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => fail(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      stream.destroy();
      reject(err);
    };
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) fail(new Error(`answer longer than ${max} bytes`));
      else chunks.push(chunk);
    });
    stream.once("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    stream.once("error", fail);
    stream.once("close", () => fail(new Error("the stream closed before its answer was complete")));
  });
}

/** Parses JSON, naming what was being read when it is not JSON. */
export function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    throw new Error(`${what} is not JSON`);
  }
}
