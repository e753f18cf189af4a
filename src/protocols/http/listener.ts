import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { TLSSocket, type SecureContext } from "node:tls";

export interface SniffingListenerOptions {
  /** TLS, when the listener offers it. */
  secureContext?: SecureContext | undefined;
  /** Whether a client at this address must use TLS. */
  tlsRequired(remote: string | undefined): boolean;
  /** Every accepted TCP connection, as it arrives. */
  onSocket(socket: Socket): void;
}

const TLS_HANDSHAKE = 0x16;

/**
 * One port for both HTTP and HTTPS: the first byte of a connection says which (a TLS handshake record starts with
 * 0x16, an HTTP request with a method's letter). HTTPS connections are decrypted here and both kinds are handed to
 * the same HTTP server. A plaintext client that must use TLS gets a 403 naming the reason, in HTTP it can read.
 */
export function sniffingListener(http: HttpServer, opts: SniffingListenerOptions): Server {
  return createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
    opts.onSocket(socket);
    socket.once("error", () => socket.destroy());
    socket.once("readable", () => {
      const first = socket.read(1) as Buffer | null;
      if (first === null) {
        socket.destroy();
        return;
      }
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE) {
        if (!opts.secureContext) {
          socket.destroy();
          return;
        }
        const tls = new TLSSocket(socket, {
          isServer: true,
          secureContext: opts.secureContext,
          ALPNProtocols: ["http/1.1"],
        });
        tls.once("error", () => tls.destroy());
        http.emit("connection", tls);
      } else if (opts.tlsRequired(socket.remoteAddress)) {
        const body = "gatehouse: this listener requires TLS (use https://)\n";
        socket.end(
          `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      } else {
        http.emit("connection", socket);
      }
      socket.resume();
    });
  });
}

export function newHttpServer(): HttpServer {
  // keep-alive past the usual 5 s: a session lives as long as its client connection
  const server = createHttpServer({ keepAliveTimeout: 60_000, headersTimeout: 30_000, requestTimeout: 0 });
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && !socket.destroyed) {
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nmalformed request: ${err.code ?? "bad request"}\n`,
      );
    } else socket.destroy();
  });
  return server;
}
