/**
 * Bad input on the agent listener and on the agent's side of a tunnel: peers that are not agents, malformed or
 * oversized hellos, raw garbage, and streams for connections or addresses the agent does not serve. Each gets a
 * clear refusal (recorded at the gateway where it is an agent event), and the gateway keeps serving.
 */
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { connect as netConnect, createServer as createNetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatehouseAgent } from "../../../src/agent/agent.js";
import { parseAgentConfig } from "../../../src/agent/config.js";
import { TUNNEL_ALPN } from "../../../src/agent/wire.js";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { generateStaticToken } from "../../../src/core/identity/static-tokens.js";
import { parseConfig } from "../../../src/core/policy/loader.js";
import { Gateway } from "../../../src/server/gateway.js";
import { until } from "./until.js";
import { gatewayYaml, pgConnectionYaml, testPgTarget } from "../../support/gateway-config.js";
import { services } from "../../support/services.js";

const agentToken = generateStaticToken();
let gateway: Gateway;
let dir: string;
let port: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gatehouse-agent-input-"));
  const yaml = gatewayYaml({
    data: dir,
    connections: [
      pgConnectionYaml(testPgTarget(services()), { name: "app-db", group: "ci", extra: "via: agent/office" }),
    ],
    top: `listen: { agents: "127.0.0.1:1" }\nagents:\n  heartbeat: 1s\n  tokens:\n    - { name: office, sha256: ${agentToken.sha256} }`,
  });
  gateway = await Gateway.start(parseConfig(yaml, { source: "input.yaml", baseDir: dir }), {
    apiListen: { host: "127.0.0.1", port: 0 },
    agentsListen: { host: "127.0.0.1", port: 0 },
    log: () => undefined,
  });
  const address = gateway.agentEndpoint?.address ?? "";
  port = Number(address.slice(address.lastIndexOf(":") + 1));
}, 60_000);

afterAll(async () => {
  await gateway?.stop("test");
  rmSync(dir, { recursive: true, force: true });
});

async function audit(type: string): Promise<AuditRecord[]> {
  await gateway.recorder.flush();
  return (await gateway.store.readAudit({ fromSeq: 1, limit: 100_000 })).filter((r) => r.type === type);
}

const refusals = () => audit("agent.refused");

/** A real agent dialling `gatewayPort` (the listener, or a relay in front of it), with quick heartbeats. */
function realAgent(gatewayPort: number): GatehouseAgent {
  return new GatehouseAgent(
    parseAgentConfig(
      [
        "name: office",
        `token: ${agentToken.token}`,
        `gateway: { address: "127.0.0.1:${gatewayPort}", pin: "${gateway.agentEndpoint?.pin}" }`,
        "heartbeat: 1s",
        "reconnect: { min: 100ms, max: 500ms }",
        "connections:",
        "  - { name: app-db, target: { host: 127.0.0.1, port: 1 } }",
      ].join("\n"),
    ),
    { version: "test", log: () => undefined },
  );
}

/**
 * A peer that speaks the tunnel's transport and answers hello with `body`; resolves with the welcome it got once
 * the tunnel closes, or (`onWelcome`) as soon as welcome arrives.
 */
function fakeAgent(
  body: string | Buffer,
  onWelcome?: (welcome: string, socket: TLSSocket) => void,
): Promise<{ welcome: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect(
      { host: "127.0.0.1", port, ALPNProtocols: [TUNNEL_ALPN], rejectUnauthorized: false },
      () => {
        const session = http2.performServerHandshake(socket);
        let welcome = "";
        session.on("error", () => undefined);
        session.on("stream", (stream, headers) => {
          if (headers[":path"] === "/v1/hello") {
            stream.respond({ ":status": 200 });
            stream.end(body);
          } else {
            stream.setEncoding("utf8");
            stream.on("data", (d: string) => (welcome += d));
            stream.on("end", () => {
              stream.respond({ ":status": 200 });
              stream.end();
              onWelcome?.(welcome, socket);
            });
          }
        });
        session.once("close", () => resolve({ welcome, closed: true }));
      },
    );
    socket.on("error", reject);
  });
}

describe("agent listener input", () => {
  it("a TLS client that does not offer the agent protocol is refused and recorded", async () => {
    const before = (await refusals()).length;
    await new Promise<void>((resolve) => {
      // no ALPN at all (a client offering only other protocols fails the TLS handshake itself)
      const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false });
      s.on("error", () => resolve());
      s.on("close", () => resolve());
    });
    await until(async () => (await refusals()).length > before);
    expect((await refusals()).at(-1)?.data).toMatchObject({
      reason: "the client did not offer the agent protocol (ALPN gatehouse-agent/1)",
    });
  });

  it("hellos that are not JSON, miss fields or are too long are refused with the reason, and recorded", async () => {
    const cases: [string | Buffer, RegExp][] = [
      ["not json", /no valid hello: hello is not JSON/],
      [JSON.stringify({ tunnel: 1, name: "office" }), /no valid hello: malformed hello/],
      [Buffer.alloc(300 * 1024, 0x61), /no valid hello: answer longer than 262144 bytes/],
    ];
    for (const [body, reason] of cases) {
      const { welcome } = await fakeAgent(body);
      expect(JSON.parse(welcome)).toMatchObject({ ok: false, error: expect.stringMatching(reason) as unknown });
      await until(async () => reason.test(String((await refusals()).at(-1)?.data?.reason)));
    }
  });

  it("a newer agent gets the tunnel version and capabilities both know", async () => {
    const hello = {
      tunnel: 7,
      name: "office",
      instance: "future-1",
      version: "9.0.0",
      token: agentToken.token,
      connections: ["app-db"],
      capabilities: ["tcp", "teleport-frames"],
    };
    let accepted: unknown;
    await fakeAgent(JSON.stringify(hello), (welcome, socket) => {
      accepted = JSON.parse(welcome);
      socket.destroy();
    });
    expect(accepted).toMatchObject({ ok: true, tunnel: 1, capabilities: ["tcp"], connections: ["app-db"] });
    await until(async () => (await audit("agent.disconnected")).some((r) => r.data?.instance === "future-1"));
    const [connected] = (await audit("agent.connected")).filter((r) => r.data?.instance === "future-1");
    expect(connected?.data).toMatchObject({ version: "9.0.0", tunnel: 1, capabilities: ["tcp"] });
  });

  it("a tunnel that goes silent (a network partition) is dropped after a missed heartbeat, and the agent returns", async () => {
    // a relay between agent and gateway that can freeze its connections without closing them
    const frozen = new Set<Socket>();
    const relay = createNetServer((inbound) => {
      const outbound = netConnect({ host: "127.0.0.1", port });
      inbound.pipe(outbound).pipe(inbound);
      const drop = () => (inbound.destroy(), outbound.destroy());
      inbound.on("error", drop);
      outbound.on("error", drop);
      freeze.push(() => {
        inbound.unpipe(outbound);
        outbound.unpipe(inbound);
        inbound.pause();
        outbound.pause();
        frozen.add(inbound);
      });
    });
    const freeze: (() => void)[] = [];
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    const relayPort = (relay.address() as { port: number }).port;
    const agent = realAgent(relayPort);
    const connects: string[] = [];
    agent.on("connected", () => connects.push("connected"));
    agent.start();
    try {
      await until(() => connects.length === 1);
      for (const f of freeze.splice(0)) f();
      await until(async () =>
        (await audit("agent.disconnected")).some(
          (r) => r.data?.instance === agent.instance && r.data.reason === "no heartbeat answer within 1000 ms",
        ),
      );
      // the agent noticed too, and came back through a fresh (unfrozen) connection
      await until(() => connects.length === 2);
      expect(frozen.size).toBe(1);
    } finally {
      await agent.stop();
      for (const s of frozen) s.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  it("raw bytes that are not TLS cost nothing: the listener still admits a real agent afterwards", async () => {
    await new Promise<void>((resolve) => {
      const s = netConnect({ host: "127.0.0.1", port }, () => s.end("GET / HTTP/1.1\r\n\r\n\x00\xff"));
      s.on("error", () => resolve());
      s.on("close", () => resolve());
    });
    const agent = realAgent(port);
    agent.start();
    try {
      await until(async () => gateway.agents.status()[0]?.state === "connected");
      const [instance] = gateway.agents.serving("office", "app-db");
      // the agent's own config decides where it dials: another address is refused, naming both
      await expect(instance?.openStream("app-db", { host: "10.9.9.9", port: 5432 }, "session")).rejects.toThrow(
        /agent office: agent office reaches "app-db" at 127.0.0.1:1, not 10.9.9.9:5432/,
      );
      await expect(instance?.openStream("other", { host: "127.0.0.1", port: 1 }, "session")).rejects.toThrow(
        /does not serve connection "other"/,
      );
      // its target refuses: the agent's dial error comes back as the reason
      await expect(instance?.openStream("app-db", { host: "127.0.0.1", port: 1 }, "session")).rejects.toThrow(
        /cannot connect to 127.0.0.1:1/,
      );
    } finally {
      await agent.stop();
    }
  });
});
