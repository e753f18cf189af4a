import http from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { HELD_SECRET_MASK } from "../core/masking/index.js";
import type { HttpCredential } from "./credentials.js";
import { HttpOrigin } from "./http-origin.js";

const TOKEN = "agent-held-token-0123456789";
const credential: HttpCredential = {
  kind: "http",
  headers: { authorization: `Bearer ${TOKEN}`, "x-tenant": "acme" },
  secrets: [`Bearer ${TOKEN}`, TOKEN],
};

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function listen(server: Server | http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

/** An origin for a target on `port`, served on a listener of its own (each connection is one "tunnel stream"). */
async function originFor(port: number): Promise<number> {
  const origin = new HttpOrigin(
    "web",
    { host: "127.0.0.1", port, url: `http://127.0.0.1:${port}`, insecure_skip_tls_verify: false },
    credential,
  );
  const front = createServer((socket) => origin.serve(socket));
  closers.push(() => {
    origin.close();
    front.close();
  });
  return listen(front);
}

describe("the agent's HTTP origin", () => {
  it("adds the credential and the target's Host, and scrubs the credential from headers and a split body", async () => {
    const target = http.createServer((req, res) => {
      res.setHeader("x-seen", String(req.headers.authorization));
      res.setHeader(
        "content-length",
        String(Buffer.byteLength(`${req.headers.authorization}|${req.headers.host}|${req.headers["x-tenant"]}`)),
      );
      const auth = String(req.headers.authorization);
      // the token split over two writes: the scrubber holds back a tail that may begin it
      res.write(auth.slice(0, 15));
      setTimeout(() => res.end(`${auth.slice(15)}|${req.headers.host}|${req.headers["x-tenant"]}`), 20);
    });
    closers.push(() => target.close());
    const targetPort = await listen(target);
    const port = await originFor(targetPort);
    const answer = await new Promise<{ headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      http
        .get(
          { port, host: "127.0.0.1", path: "/x", headers: { host: "gateway.example", authorization: "Bearer client" } },
          (res) => {
            let body = "";
            res.on("data", (d: Buffer) => (body += d.toString()));
            res.on("end", () => resolve({ headers: res.headers, body }));
          },
        )
        .on("error", reject);
    });
    expect(answer.headers["x-seen"]).toBe(HELD_SECRET_MASK);
    expect(answer.headers["content-length"]).toBeUndefined();
    expect(answer.body).toBe(`${HELD_SECRET_MASK}|127.0.0.1:${targetPort}|acme`);
  });

  it("an upgrade is written to the target with the credential, and what the target sends back is scrubbed", async () => {
    let request = "";
    const target = createServer((socket: Socket) => {
      socket.once("data", (d: Buffer) => {
        request = d.toString();
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nupgrade: test\r\nconnection: Upgrade\r\n\r\necho ${TOKEN} done`,
        );
      });
    });
    closers.push(() => target.close());
    const port = await originFor(await listen(target));
    const got = await new Promise<string>((resolve, reject) => {
      const req = http.request({
        port,
        host: "127.0.0.1",
        path: "/ws",
        headers: { connection: "Upgrade", upgrade: "test" },
      });
      req.on("upgrade", (_res, socket: Socket, head: Buffer) => {
        let text = head.toString();
        socket.on("data", (d: Buffer) => (text += d.toString()));
        setTimeout(() => {
          socket.destroy();
          resolve(text);
        }, 100);
      });
      req.on("error", reject);
      req.end();
    });
    expect(request).toMatch(/^GET \/ws HTTP\/1.1\r\n/);
    expect(request).toContain(`authorization: Bearer ${TOKEN}\r\n`);
    expect(request).toContain("upgrade: test\r\n");
    expect(got).toBe(`echo ${HELD_SECRET_MASK} done`);
  });
});
