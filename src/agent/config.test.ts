import { describe, expect, it } from "vitest";
import { ConfigError } from "../core/policy/errors.js";
import { parseAgentConfig } from "./config.js";

const PIN = `sha256//${"A".repeat(43)}=`;
const base = (gateway: string, extra = "") =>
  `name: office\ntoken: t\ngateway: ${gateway}\nconnections:\n  - { name: app-db, target: { host: 10.0.0.5, port: 5432 } }\n${extra}`;

function errorOf(text: string): string {
  try {
    parseAgentConfig(text, { env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("agent.yaml", () => {
  it("parses, with defaults for heartbeat and reconnect", () => {
    const c = parseAgentConfig(base(`{ address: "gw:18443", pin: "${PIN}" }`));
    expect(c).toMatchObject({
      name: "office",
      gateway: { address: { host: "gw", port: 18443 }, pin: PIN },
      heartbeat: 10_000,
      reconnect: { min: 500, max: 30_000 },
      connections: [{ name: "app-db", target: { host: "10.0.0.5", port: 5432 } }],
    });
  });

  it("must say how to trust the gateway; a pin has curl's spelling", () => {
    expect(errorOf(base(`{ address: "gw:18443" }`))).toBe(
      "agent.yaml: gateway: say how to trust the gateway: ca (its CA certificate) or pin (its key's sha256// pin)",
    );
    expect(errorOf(base(`{ address: "gw:18443", pin: "abc" }`))).toBe(
      "agent.yaml: gateway.pin: expected sha256//BASE64 (as `gatehouse agents pin` prints it)",
    );
  });

  it("names the path of other mistakes: a duplicate connection, a missing token reference, an unknown key", () => {
    const twice = base(`{ address: "gw:1", pin: "${PIN}" }`, "  - { name: app-db, target: { host: h, port: 1 } }\n");
    expect(errorOf(twice)).toBe('agent.yaml: connections[1].name: duplicate connection "app-db"');
    expect(errorOf(base(`{ address: "gw:1", pin: "${PIN}" }`).replace("token: t", "token: ${env:NOPE}"))).toMatch(
      /^agent.yaml: token: .*NOPE/,
    );
    expect(errorOf(base(`{ address: "gw:1", pin: "${PIN}" }`, "listen: x\n"))).toMatch(/^agent.yaml: .*listen/);
  });
});
