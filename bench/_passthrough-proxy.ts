/**
 * A bare pass-through TCP proxy: what any Node.js proxy costs before it does anything (an extra hop, two more
 * sockets per connection, syscalls and event-loop wakeups per message). bench/pgbench.ts measures it next to the
 * gateway as the ceiling a Node.js proxy can reach on the same machine.
 *
 * As a module: `startPassthroughProxy(host, port)` in the caller's process. As a program (what the bench uses,
 * so the proxy has its own event loop and process like a real separate proxy):
 *
 *   node --import tsx bench/_passthrough-proxy.ts TARGET_HOST TARGET_PORT
 *
 * prints {"port": N} on stdout once listening on 127.0.0.1, and exits on SIGTERM/SIGINT or when stdin closes
 * (the parent went away).
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { runAsProxyProcess } from "./_proxy-process.js";

export interface PassthroughProxy {
  port: number;
  close(): Promise<void>;
}

export async function startPassthroughProxy(targetHost: string, targetPort: number): Promise<PassthroughProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: targetHost, port: targetPort });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    const pair = (a: Socket, b: Socket) => {
      a.on("error", () => b.destroy());
      a.on("close", () => b.destroy());
    };
    pair(client, upstream);
    pair(upstream, client);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

await runAsProxyProcess(import.meta.url, startPassthroughProxy);
