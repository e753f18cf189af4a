/**
 * One slow stream never stalls the others: a target stream whose reader stops while its target keeps sending
 * fills only that stream's HTTP/2 window. Another stream through the same agent tunnel keeps its round trips, and
 * the stalled stream, once read, still delivers every byte in order.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { GatehouseAgent } from "../../../src/agent/agent.js";
import { parseAgentConfig } from "../../../src/agent/config.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { until } from "./until.js";
import { freePort, gatewayYaml } from "../../support/gateway-config.js";

const FLOOD_BYTES = 64 * 1024 * 1024;
const STALLED = 40;
const agentToken = generateStaticToken();
let gateway: Gateway;
let agent: GatehouseAgent;
let target: Server;
let targetPort: number;
let dir: string;
/** What the flood target sent on each connection, hashed as it went, in connection order. */
const sent: ReturnType<typeof createHash>[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatehouse-agent-flow-"));
  targetPort = await freePort();
  // the first line a client sends picks its role: "flood" gets FLOOD_BYTES of counted data, anything else echoes
  target = createServer((socket) => {
    socket.once("data", (first: Buffer) => {
      if (first.toString().startsWith("flood")) {
        const hash = createHash("sha256");
        sent.push(hash);
        let left = FLOOD_BYTES;
        let n = 0;
        const pump = () => {
          while (left > 0) {
            const chunk = Buffer.alloc(Math.min(64 * 1024, left), n++ % 251);
            hash.update(chunk);
            left -= chunk.length;
            if (!socket.write(chunk)) return void socket.once("drain", pump);
          }
          socket.end();
        };
        pump();
      } else {
        socket.write(first);
        socket.pipe(socket);
      }
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => target.listen(targetPort, "127.0.0.1", resolve));
  const yaml = gatewayYaml({
    data: dir,
    connections: [
      [
        "  - name: raw",
        "    type: postgres",
        `    target: { host: 127.0.0.1, port: ${targetPort}, user: u }`,
        "    via: agent/office",
        "    access: [group:ci]",
      ].join("\n"),
    ],
    top: `listen: { agents: "127.0.0.1:1" }\nagents:\n  tokens:\n    - { name: office, sha256: ${agentToken.sha256} }`,
  });
  gateway = await Gateway.start(parseConfig(yaml, { source: "flow.yaml", baseDir: dir }), {
    apiListen: { host: "127.0.0.1", port: 0 },
    agentsListen: { host: "127.0.0.1", port: 0 },
    log: () => undefined,
  });
  agent = new GatehouseAgent(
    parseAgentConfig(
      [
        "name: office",
        `token: ${agentToken.token}`,
        `gateway: { address: "${gateway.agentEndpoint?.address}", pin: "${gateway.agentEndpoint?.pin}" }`,
        "connections:",
        `  - { name: raw, target: { host: 127.0.0.1, port: ${targetPort} } }`,
      ].join("\n"),
    ),
    { version: "test", log: () => undefined },
  );
  agent.start();
  await until(async () => gateway.agents.status()[0]?.state === "connected");
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await gateway?.stop("test");
  await new Promise<void>((resolve) => target?.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function roundTrip(stream: Duplex, text: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    stream.once("data", () => resolve(performance.now() - started));
    stream.write(text);
  });
}

it("a stalled stream fills only its own window; another stream keeps its round trips; no byte is lost", async () => {
  const open = (connection: string) =>
    gateway.agents
      .serving("office", connection)[0]!
      .openStream(connection, { host: "127.0.0.1", port: targetPort }, "session");
  // more stalled streams than a tunnel window of a few stream windows could hold
  const floods: Duplex[] = [];
  for (let i = 0; i < STALLED; i++) {
    const s = await open("raw");
    s.pause();
    s.write("flood\n");
    floods.push(s);
  }
  const flood = floods[0] as Duplex;
  const echo = await open("raw");
  await roundTrip(echo, "hello\n");
  // let the flood fill every buffer it can (its window, the agent's socket) while nobody reads it
  await new Promise((r) => setTimeout(r, 500));
  const times: number[] = [];
  for (let i = 0; i < 50; i++) times.push(await roundTrip(echo, `ping ${i}\n`));
  times.sort((a, b) => a - b);
  // the stalled stream did not stop the other: every round trip came back, the slowest well under a second
  expect(times).toHaveLength(50);
  expect(times.at(-1)).toBeLessThan(1_000);
  // each flood was held back by flow control, not buffered whole in the gateway
  for (const s of floods) expect(s.readableLength).toBeLessThan(4 * 1024 * 1024);
  const received = createHash("sha256");
  let bytes = 0;
  flood.on("data", (chunk: Buffer) => {
    received.update(chunk);
    bytes += chunk.length;
  });
  flood.resume();
  await new Promise((resolve) => flood.once("end", resolve));
  expect(bytes).toBe(FLOOD_BYTES);
  expect(received.digest("hex")).toBe(sent[0]?.digest("hex"));
  echo.destroy();
  for (const s of floods) s.destroy();
});
