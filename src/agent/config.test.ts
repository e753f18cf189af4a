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

  it("http credentials: a url target (normalized to host and port) and one Authorization at most", () => {
    const gw = `{ address: "gw:1", pin: "${PIN}" }`;
    const one = (conn: string) => `name: office\ntoken: t\ngateway: ${gw}\nconnections:\n  - ${conn}\n`;
    const c = parseAgentConfig(
      one(
        '{ name: web, target: { url: "https://api.example:8443", insecure_skip_tls_verify: true }, credentials: { basic: { user: u, password: "pw-value" }, headers: { X-Tenant: acme } } }',
      ),
      { env: {} },
    );
    expect(c.connections[0]).toMatchObject({
      target: { host: "api.example", port: 8443, url: "https://api.example:8443", insecure_skip_tls_verify: true },
      credentials: { basic: { user: "u", password: "pw-value" }, headers: { "X-Tenant": "acme" } },
    });
    expect(
      parseAgentConfig(one('{ name: k, target: { url: "http://10.0.0.5" }, credentials: { token: "t" } }'), { env: {} })
        .connections[0]?.target,
    ).toMatchObject({ host: "10.0.0.5", port: 80 });
    expect(errorOf(one('{ name: web, target: { host: h, port: 443 }, credentials: { bearer: "t" } }'))).toBe(
      "agent.yaml: connections[0].target: http credentials need target.url (http:// or https://): the agent makes the requests to it itself",
    );
    expect(errorOf(one('{ name: web, target: { url: "https://a" }, credentials: { bearer: "t", token: "u" } }'))).toBe(
      "agent.yaml: connections[0].credentials: bearer and token all set the Authorization header: choose one",
    );
    expect(
      errorOf(
        one('{ name: web, target: { url: "https://a" }, credentials: { bearer: "t", headers: { Authorization: x } } }'),
      ),
    ).toBe(
      "agent.yaml: connections[0].credentials.headers.Authorization: Authorization is already set by bearer: choose one",
    );
    expect(
      errorOf(one('{ name: web, target: { url: "https://a" }, credentials: { bearer: "t", password: "p" } }')),
    ).toMatch(/^agent.yaml: connections\[0\].credentials: give password/);
    expect(
      errorOf(
        one('{ name: web, target: { url: "https://a" }, credentials: { client_cert: "-----BEGIN CERTIFICATE-----" } }'),
      ),
    ).toBe("agent.yaml: connections[0].credentials: client_cert and client_key go together");
    expect(errorOf(one('{ name: web, target: { url: "http://a", ca: "-----BEGIN CERTIFICATE-----" } }'))).toBe(
      "agent.yaml: connections[0].target.ca: ca is for an https url only",
    );
    expect(errorOf(one('{ name: web, target: { url: "https://a", host: a, port: 1 } }'))).toBe(
      "agent.yaml: connections[0].target: give url, or host and port, not both",
    );
    expect(errorOf(one('{ name: web, target: { url: "ftp://a" } }'))).toMatch(
      /^agent.yaml: connections\[0\].target.url: URL scheme must be http or https/,
    );
  });
});
