import { afterEach, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { WsFlow } from "./ws-flow.js";

const servers: WebSocketServer[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) {
    for (const c of s.clients) c.terminate();
    s.close();
  }
});

function server(onConnection: (ws: WebSocket) => void): Promise<number> {
  return new Promise((resolve) => {
    const s: WebSocketServer = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () =>
      resolve((s.address() as { port: number }).port),
    );
    s.on("connection", onConnection);
    servers.push(s);
  });
}

const open = (port: number) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });

describe("WsFlow", () => {
  it("pauses the source while the receiver is backed up, and delivers every message once it reads again", async () => {
    const MESSAGES = 400;
    const chunk = Buffer.alloc(64 * 1024, 7);
    // the producer sends as fast as it can; the receiver does not read until told to
    const sourcePort = await server((ws) => {
      for (let i = 0; i < MESSAGES; i++) ws.send(chunk);
    });
    let peer: WebSocket | undefined;
    let received = 0;
    const sinkPort = await server((ws) => {
      peer = ws;
      ws.pause();
      ws.on("message", () => received++);
    });
    const dst = await open(sinkPort);
    const src = await open(sourcePort);
    const flow = new WsFlow(src);
    src.on("message", (data: Buffer) => flow.send(dst, data, true));

    // the relay stops reading its source rather than queue 25 MiB for a receiver that does not read
    for (let i = 0; i < 100 && !src.isPaused; i++) await new Promise((r) => setTimeout(r, 20));
    expect(src.isPaused).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(dst.bufferedAmount).toBeLessThan(2 * 1024 * 1024);

    peer?.resume();
    for (let i = 0; i < 250 && received < MESSAGES; i++) await new Promise((r) => setTimeout(r, 20));
    expect(received).toBe(MESSAGES);
    expect(src.isPaused).toBe(false);
  });
});
