import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import { CredentialRefusedError } from "../core/adapter/index.js";
import { ConfigError } from "../core/policy/errors.js";
import { parseConfig } from "../core/policy/loader.js";
import { agentPassword, md5Response } from "../protocols/postgres/password.js";
import { ScramClient } from "../protocols/postgres/scram.js";
import { generateEd25519KeyPair } from "../protocols/ssh/host-key.js";
import { parseAgentConfig } from "./config.js";
import { AgentCredentials, userauthRequestFor } from "./credentials.js";
import { credentialsMissing } from "./endpoint.js";
import { tunnelOracle } from "./oracle.js";
import { MAX_SCRAM_ITERATIONS, type CredentialAnswer, type CredentialRequest, type Hello } from "./wire.js";

const ed25519 = generateEd25519KeyPair();
const rsa = ssh2.utils.generateKeyPairSync("rsa", { bits: 2048 });

function config(connections: string, env: Record<string, string> = {}) {
  return parseAgentConfig(
    [
      "name: office",
      "token: t",
      `gateway: { address: "127.0.0.1:18443", pin: "sha256//${"A".repeat(43)}=" }`,
      "connections:",
      connections,
    ].join("\n"),
    { env },
  );
}

const held = config(
  [
    '  - { name: app-db, target: { host: db, port: 5432 }, credentials: { password: "${env:PW}" } }',
    '  - { name: app-host, target: { host: h, port: 22 }, credentials: { private_key: "${env:KEY}" } }',
    '  - { name: rsa-host, target: { host: h, port: 22 }, credentials: { private_key: "${env:RSA}" } }',
    "  - { name: plain, target: { host: p, port: 5432 } }",
  ].join("\n"),
  { PW: "pencil", KEY: ed25519.private, RSA: rsa.private },
);
const creds = new AgentCredentials(held);
const admitted = ["app-db", "app-host", "rsa-host", "plain"];
const ask = (request: unknown, served: readonly string[] = admitted) => creds.answer(request, served);

/** The gateway's oracle wired straight to the agent's answers, as the tunnel would carry them. */
const oracle = (connection: string) =>
  tunnelOracle("office", connection, (request: CredentialRequest) =>
    creds.answer(JSON.parse(JSON.stringify(request)), admitted),
  );

/** What an SSH client signs to log in (RFC 4252 section 7). */
function userauthData(publicKey: Buffer, algorithm: string): Buffer {
  const str = (b: Buffer | string) => {
    const body = Buffer.from(b);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return Buffer.concat([len, body]);
  };
  return Buffer.concat([
    str(Buffer.alloc(32, 7)),
    Buffer.from([50]),
    str("deploy"),
    str("ssh-connection"),
    str("publickey"),
    Buffer.from([1]),
    str(algorithm),
    str(publicKey),
  ]);
}

describe("agent credentials: what the agent announces", () => {
  it("announces the kind per connection and a capability only for kinds it holds", () => {
    expect(creds.kinds()).toEqual({ "app-db": "password", "app-host": "private_key", "rsa-host": "private_key" });
    expect(creds.capabilities()).toEqual(["credential:postgres", "credential:ssh"]);
    const pgOnly = new AgentCredentials(
      config('  - { name: a, target: { host: h, port: 1 }, credentials: { password: "x" } }'),
    );
    expect(pgOnly.capabilities()).toEqual(["credential:postgres"]);
    expect(new AgentCredentials(config("  - { name: a, target: { host: h, port: 1 } }")).capabilities()).toEqual([]);
    const web = new AgentCredentials(
      config('  - { name: web, target: { url: "https://api.example" }, credentials: { bearer: "t0ken-value" } }'),
    );
    // announced apart from the login kinds, which a gateway from before credential:http parses strictly
    expect(web.kinds()).toEqual({});
    expect(web.httpConnections()).toEqual(["web"]);
    expect(web.capabilities()).toEqual(["credential:http"]);
    expect(web.http("web")).toMatchObject({
      headers: { authorization: "Bearer t0ken-value" },
      secrets: expect.arrayContaining(["Bearer t0ken-value", "t0ken-value"]) as unknown,
    });
  });

  it("an http credential answers no login step: the oracle refuses it", async () => {
    const web = new AgentCredentials(
      config('  - { name: web, target: { url: "https://api.example" }, credentials: { token: "t0ken-value" } }'),
    );
    const answer = await web.answer({ op: "ssh.identities", connection: "web" }, ["web"]);
    expect(answer).toEqual({
      ok: false,
      error: 'agent office holds an http credential for connection "web", and ssh.identities needs a private_key',
    });
  });

  it("agent.yaml: a password or a private key, not both; a key must be a usable private key", () => {
    const errorOf = (creds: string, env: Record<string, string> = {}) => {
      try {
        config(`  - { name: a, target: { host: h, port: 1 }, credentials: ${creds} }`, env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error("expected a ConfigError");
    };
    expect(errorOf('{ password: "x", private_key: "${env:KEY}" }', { KEY: ed25519.private })).toBe(
      "agent.yaml: connections[0].credentials: give password (for a PostgreSQL login), private_key (for an SSH login; SSH password logins cannot be held by an agent), or for an http or kubernetes connection bearer, token, basic, headers or client_cert with client_key",
    );
    expect(errorOf("{}")).toMatch(/connections\[0\]\.credentials: give password/);
    expect(errorOf("{ user: x }")).toMatch(/connections\[0\]\.credentials: unknown key "user"/);
    const broken = ed25519.private.replace(/\n[A-Za-z0-9+/]{20}/, "\nAAAAAAAAAAAAAAAAAAAA");
    const message = errorOf('{ private_key: "${env:KEY}" }', { KEY: broken });
    expect(message).toMatch(/^agent\.yaml: connections\[0\]\.credentials\.private_key: not a usable SSH private key: /);
    expect(errorOf('{ private_key: "${env:KEY}" }', { KEY: `${ed25519.public}\n-----BEGIN X-----` })).toMatch(
      /credentials\.private_key: /,
    );
    // no line of the key ever appears in a message
    for (const line of broken.split("\n").filter((l) => l.length > 20)) expect(message).not.toContain(line);
  });
});

describe("agent credentials: refusals", () => {
  it("refuses connections the gateway did not admit, that it does not serve, or that hold nothing", async () => {
    expect(await ask({ op: "pg.md5", connection: "app-db", user: "u", salt: "AAAAAA==" }, ["app-host"])).toEqual({
      ok: false,
      error: 'agent office does not serve connection "app-db"',
    });
    expect(await ask({ op: "ssh.identities", connection: "elsewhere" }, [...admitted, "elsewhere"])).toEqual({
      ok: false,
      error: 'agent office does not serve connection "elsewhere"',
    });
    expect(await ask({ op: "ssh.identities", connection: "plain" })).toEqual({
      ok: false,
      error: 'agent office holds no credentials for connection "plain"',
    });
  });

  it("refuses unknown and malformed operations, and a step its credential cannot do", async () => {
    expect(await ask({ op: "pg.cleartext", connection: "app-db" })).toEqual({
      ok: false,
      error: 'unknown credential operation "pg.cleartext"',
    });
    expect(await ask({ op: "pg.md5", connection: "app-db", user: "u" })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^malformed credential request \(salt: /),
    });
    expect(await ask(null)).toMatchObject({ ok: false, error: expect.stringMatching(/^malformed credential request/) });
    expect(await ask({ op: "ssh.identities", connection: "app-db" })).toEqual({
      ok: false,
      error: 'agent office holds a password for connection "app-db", and ssh.identities needs a private_key',
    });
    expect(await ask({ op: "pg.md5", connection: "app-host", user: "u", salt: "AAAAAA==" })).toEqual({
      ok: false,
      error: 'agent office holds a private_key for connection "app-host", and pg.md5 needs a password',
    });
    expect(await ask({ op: "pg.md5", connection: "app-db", user: "u", salt: "AAAA" })).toEqual({
      ok: false,
      error: "pg.md5: the salt must be 4 bytes",
    });
  });

  it("caps SCRAM iterations so a hostile target cannot burn the agent's CPU", async () => {
    const iterations = MAX_SCRAM_ITERATIONS + 1;
    const started = Date.now();
    const answer = await ask({
      op: "pg.scram-sha-256",
      connection: "app-db",
      salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
      iterations,
      auth_message: `n=*,r=a,r=ab,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=${iterations},c=biws,r=ab`,
    });
    expect(answer).toEqual({
      ok: false,
      error: `the target asks for ${iterations} SCRAM iterations; this agent computes at most ${MAX_SCRAM_ITERATIONS}`,
    });
    expect(Date.now() - started).toBeLessThan(200);
  });

  it("computes a SCRAM proof only for the salt and count its auth message carries", async () => {
    expect(
      await ask({
        op: "pg.scram-sha-256",
        connection: "app-db",
        salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
        iterations: 4096,
        auth_message: "n=*,r=a,r=ab,s=QUFBQQ==,i=4096,c=biws,r=ab",
      }),
    ).toEqual({
      ok: false,
      error: "pg.scram-sha-256: the auth message does not carry the given salt and iteration count",
    });
  });
});

describe("agent credentials: answers", () => {
  it("a SCRAM proof equals what the local ScramClient computes, and the oracle-driven client passes RFC 7677", async () => {
    const nonce = "rOprNGfwEbeRWgbNEkqO";
    const serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const local = new ScramClient("pencil", { nonce, user: "user" });
    const expected = (await local.final(serverFirst)).toString();
    const proof = expected.slice(expected.indexOf(",p=") + 3);

    const answer = (await ask({
      op: "pg.scram-sha-256",
      connection: "app-db",
      salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
      iterations: 4096,
      auth_message: `n=user,r=${nonce},${serverFirst},c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0`,
    })) as Extract<CredentialAnswer, { ok: true }>;
    expect(answer.scram).toEqual({ proof, server_signature: "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" });

    const viaAgent = new ScramClient(agentPassword(oracle("app-db")), { nonce, user: "user" });
    expect((await viaAgent.final(serverFirst)).toString()).toBe(expected);
    expect(() => viaAgent.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).not.toThrow();
    expect(() => viaAgent.verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).toThrow(/mismatch/);
  });

  it("an md5 response equals the local one", async () => {
    const salt = Buffer.from([1, 2, 3, 4]);
    expect(await oracle("app-db").pgMd5("app", salt)).toBe(md5Response("app", "pencil", salt));
  });

  it("a refusal reaches the gateway as a CredentialRefusedError naming the agent", async () => {
    const refused = oracle("app-host").pgMd5("app", Buffer.alloc(4));
    await expect(refused).rejects.toThrow(CredentialRefusedError);
    await expect(refused).rejects.toThrow(
      'agent office: agent office holds a private_key for connection "app-host", and pg.md5 needs a password',
    );
    const lost = tunnelOracle("office", "app-db", () => Promise.reject(new Error("the tunnel closed")));
    await expect(lost.pgMd5("app", Buffer.alloc(4))).rejects.toThrow(
      'agent office could not answer for the credentials of "app-db": the tunnel closed',
    );
  });

  it("lists its SSH key and signs a login request for it (Ed25519, and RSA with the hash asked for)", async () => {
    for (const [connection, pair, algorithm, hash] of [
      ["app-host", ed25519, "ssh-ed25519", undefined],
      ["rsa-host", rsa, "rsa-sha2-256", "sha256"],
      ["rsa-host", rsa, "rsa-sha2-512", "sha512"],
    ] as const) {
      const key = ssh2.utils.parseKey(pair.public) as ssh2.ParsedKey;
      const keys = await oracle(connection).sshIdentities();
      expect(keys).toEqual([key.getPublicSSH()]);
      const data = userauthData(key.getPublicSSH(), algorithm);
      const signature = await oracle(connection).sshSign(key.getPublicSSH(), data, hash);
      expect(key.verify(data, signature, hash)).toBe(true);
    }
  });

  it("signs nothing but a login request for its own key", async () => {
    const key = (ssh2.utils.parseKey(ed25519.public) as ssh2.ParsedKey).getPublicSSH();
    const other = (ssh2.utils.parseKey(rsa.public) as ssh2.ParsedKey).getPublicSSH();
    await expect(oracle("app-host").sshSign(key, Buffer.from("a git commit to sign"))).rejects.toThrow(
      "agent office: ssh.sign: the data is not an SSH publickey login request for this key",
    );
    await expect(oracle("app-host").sshSign(key, userauthData(other, "rsa-sha2-256"))).rejects.toThrow(
      /not an SSH publickey login request for this key/,
    );
    await expect(oracle("app-host").sshSign(other, userauthData(other, "rsa-sha2-256"))).rejects.toThrow(
      'agent office: ssh.sign: agent office holds no such key for "app-host"',
    );
    expect(userauthRequestFor(Buffer.concat([userauthData(key, "ssh-ed25519"), Buffer.from([0])]), key)).toBe(false);
    expect(userauthRequestFor(userauthData(key, "ssh-ed25519").subarray(0, 40), key)).toBe(false);
  });
});

describe("gateway: which agent may carry a secrets: agent connection", () => {
  const gw = parseConfig(
    [
      'listen: { agents: "127.0.0.1:18443" }',
      `agents: { tokens: [{ name: office, sha256: ${"a".repeat(64)} }] }`,
      "connections:",
      "  - { name: db, type: postgres, target: { host: h, user: u }, access: [group:ci], via: agent/office, secrets: agent }",
      `  - { name: host, type: ssh, target: { host: h, user: u, host_key: "SHA256:${"A".repeat(43)}" }, access: [group:ci], via: agent/office, secrets: agent }`,
      "  - { name: held, type: postgres, target: { host: h, user: u, password: p }, access: [group:ci], via: agent/office }",
    ].join("\n"),
  );
  const [db, host, heldByGateway] = gw.connections as [
    (typeof gw.connections)[number],
    (typeof gw.connections)[number],
    (typeof gw.connections)[number],
  ];
  const hello = (credentials?: Hello["credentials"]): Hello => ({
    tunnel: 1,
    name: "office",
    instance: "i",
    version: "0.9",
    token: "t",
    connections: ["db", "host", "held"],
    capabilities: ["tcp", "credential:postgres", "credential:ssh"],
    ...(credentials ? { credentials } : {}),
  });
  const all = ["tcp", "credential:postgres", "credential:ssh"];

  it("accepts an agent holding the right kind, with the capability", () => {
    const h = hello({ db: "password", host: "private_key" });
    expect(credentialsMissing(db, h, all)).toBeUndefined();
    expect(credentialsMissing(host, h, all)).toBeUndefined();
    expect(credentialsMissing(heldByGateway, hello(), ["tcp"])).toBeUndefined();
  });

  it("refuses, with the reason, an agent without the capability, without credentials, or with the wrong kind", () => {
    expect(credentialsMissing(db, hello({ db: "password" }), ["tcp"])).toBe(
      'connection "db" keeps its credentials on the agent (secrets: agent), and agent office (version 0.9) does not offer credential:postgres',
    );
    expect(credentialsMissing(db, hello(), all)).toBe(
      'connection "db" keeps its credentials on the agent (secrets: agent), and agent office holds no credentials for it',
    );
    expect(credentialsMissing(host, hello({ host: "password" }), all)).toBe(
      'connection "host" keeps its credentials on the agent (secrets: agent), and agent office holds a password for it, but ssh logins through an agent need a private_key',
    );
  });

  it("an http connection needs credential:http and an http credential, announced in http_credentials", () => {
    const web = parseConfig(
      [
        "listen: { agents: 127.0.0.1:1 }",
        `agents: { tokens: [{ name: office, sha256: ${"a".repeat(64)} }] }`,
        "connections:",
        "  - { name: web, type: http, target: { url: https://api.example }, access: [group:ci], via: agent/office, secrets: agent }",
      ].join("\n"),
    ).connections[0] as (typeof gw.connections)[number];
    const withHttp = { ...hello(), capabilities: ["tcp", "credential:http"], http_credentials: ["web"] };
    expect(credentialsMissing(web, withHttp, ["tcp", "credential:http"])).toBeUndefined();
    expect(credentialsMissing(web, withHttp, ["tcp"])).toBe(
      'connection "web" keeps its credentials on the agent (secrets: agent), and agent office (version 0.9) does not offer credential:http',
    );
    expect(credentialsMissing(web, hello({ web: "password" }), ["tcp", "credential:http"])).toBe(
      'connection "web" keeps its credentials on the agent (secrets: agent), and agent office holds a password for it, but http logins through an agent need an http credential',
    );
    expect(credentialsMissing(web, hello(), ["tcp", "credential:http"])).toBe(
      'connection "web" keeps its credentials on the agent (secrets: agent), and agent office holds no credentials for it',
    );
  });
});
