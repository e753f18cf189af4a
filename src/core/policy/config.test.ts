import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeConfig, renderDescription } from "./describe.js";
import { ConfigError } from "./errors.js";
import { configMeta, loadConfig, parseConfig } from "./loader.js";

const PG = `connections:
  - name: app-db
    type: postgres
    target: { host: 127.0.0.1, port: 5432, user: app, password: "\${env:APP_DB_PASSWORD}" }
    access: [group:ci]
`;

function errorOf(text: string, env: Record<string, string> = {}): string {
  try {
    parseConfig(text, { source: "gatehouse.yaml", env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected a ConfigError");
}

function conn(extra: string, type = "postgres", target = "{ host: h, user: u }"): string {
  return `connections:\n  - name: c\n    type: ${type}\n    target: ${target}\n    access: ["*"]\n${extra}`;
}

describe("parseConfig: agents", () => {
  const agents = `listen: { agents: "127.0.0.1:18443" }\nagents:\n  tokens:\n    - { name: office, sha256: ${"a".repeat(64)} }\n`;

  it("a connection reached via an agent names an agent that may dial in", () => {
    const config = parseConfig(agents + conn("    via: agent/office\n"));
    expect(config.connections[0]?.via).toBe("agent/office");
    expect(config.agents.heartbeat).toBe(10_000);
    expect(errorOf(agents + conn("    via: agent/other\n"))).toBe(
      'gatehouse.yaml: connections[0].via: no agent named "other" in agents.tokens (add it with its token\'s sha256: gatehouse token new --name other)',
    );
    expect(errorOf(agents.replace(/^listen.*\n/, "") + conn("    via: agent/office\n"))).toBe(
      'gatehouse.yaml: connections[0].via: "agent/office" needs listen.agents, the address agents dial in to',
    );
  });

  it("agent names and token hashes are unique; secrets: agent needs an agent", () => {
    const twice = agents + `    - { name: office, sha256: ${"b".repeat(64)} }\n`;
    expect(errorOf(twice)).toMatch(/^gatehouse.yaml: agents.tokens\[1\].name: duplicate agent "office"/);
    expect(errorOf(conn("    secrets: agent\n"))).toMatch(
      /connections\[0\].secrets: secrets: agent needs via: agent\/NAME/,
    );
  });
  it("secrets: agent: postgres and ssh logins through the agent; the gateway then holds no password or key", () => {
    const viaAgent = "    via: agent/office\n    secrets: agent\n";
    const pg = parseConfig(agents + conn(viaAgent));
    expect(pg.connections[0]).toMatchObject({ type: "postgres", secrets: "agent", target: { user: "u" } });
    const described = describeConfig(pg);
    expect(described.connections[0]).toMatchObject({ via: "agent/office", secrets: "agent" });
    expect(renderDescription(described)).toMatch(
      /secrets +agent \(the target's credentials are held only by the agent\)/,
    );
    const sshTarget = '{ host: h, user: deploy, host_key: "SHA256:' + "A".repeat(43) + '" }';
    expect(parseConfig(agents + conn(viaAgent, "ssh", sshTarget)).connections[0]).toMatchObject({
      type: "ssh",
      secrets: "agent",
    });
    expect(errorOf(agents + conn(viaAgent, "postgres", '{ host: h, user: u, password: "pw" }'))).toBe(
      "gatehouse.yaml: connections[0].target.password: with secrets: agent only the agent holds the credentials: remove target.password here and give it to the agent (credentials.password in agent.yaml)",
    );
    const keyed = sshTarget.replace("{ ", '{ private_key: "-----BEGIN OPENSSH PRIVATE KEY-----", ');
    expect(errorOf(agents + conn(viaAgent, "ssh", keyed))).toBe(
      "gatehouse.yaml: connections[0].target.private_key: with secrets: agent only the agent holds the credentials: remove target.private_key here and give it to the agent (credentials.private_key in agent.yaml)",
    );
    // without secrets: agent, an ssh target still needs a credential of the gateway's
    expect(errorOf(agents + conn("    via: agent/office\n", "ssh", sshTarget))).toMatch(
      /connections\[0\].target: an ssh target needs private_key or password/,
    );
  });

  it("secrets: agent for http and kubernetes: accepted, with every credential field refused in the target", () => {
    const viaAgent = "    via: agent/office\n    secrets: agent\n";
    expect(parseConfig(agents + conn(viaAgent, "http", "{ url: https://api.example }")).connections[0]).toMatchObject({
      type: "http",
      secrets: "agent",
    });
    expect(
      parseConfig(agents + conn(viaAgent, "kubernetes", "{ server: https://k8s.example }")).connections[0],
    ).toMatchObject({ type: "kubernetes", secrets: "agent" });
    const held = (field: string) =>
      `with secrets: agent only the agent holds the credentials: remove target.${field} here and give it to the agent (credentials.${field} in agent.yaml)`;
    expect(errorOf(agents + conn(viaAgent, "http", '{ url: https://api.example, bearer: "t0ken-value" }'))).toBe(
      `gatehouse.yaml: connections[0].target.bearer: ${held("bearer")}`,
    );
    expect(
      errorOf(agents + conn(viaAgent, "http", '{ url: https://api.example, basic: { user: u, password: "pw" } }')),
    ).toBe(`gatehouse.yaml: connections[0].target.basic: ${held("basic")}`);
    expect(
      errorOf(agents + conn(viaAgent, "http", '{ url: https://api.example, headers: { X-Api-Key: "k3y-value" } }')),
    ).toBe(`gatehouse.yaml: connections[0].target.headers: ${held("headers")}`);
    expect(errorOf(agents + conn(viaAgent, "kubernetes", '{ server: https://k8s.example, token: "t0ken" }'))).toBe(
      `gatehouse.yaml: connections[0].target.token: ${held("token")}`,
    );
    const pair =
      '{ server: https://k8s.example, client_cert: "-----BEGIN CERTIFICATE-----", client_key: "-----BEGIN PRIVATE KEY-----" }';
    const pairError = errorOf(agents + conn(viaAgent, "kubernetes", pair));
    expect(pairError).toContain(`connections[0].target.client_key: ${held("client_key")}`);
    expect(pairError).toContain(`connections[0].target.client_cert: ${held("client_cert")}`);
    expect(
      errorOf(agents + conn(viaAgent, "http", "{ url: https://api.example, insecure_skip_tls_verify: true }")),
    ).toBe(
      "gatehouse.yaml: connections[0].target.insecure_skip_tls_verify: with secrets: agent the agent connects to the target itself: remove target.insecure_skip_tls_verify here and give it to the agent (target.insecure_skip_tls_verify in agent.yaml)",
    );
  });

  it("secrets: agent is refused for mysql (not yet)", () => {
    const viaAgent = "    via: agent/office\n    secrets: agent\n";
    expect(errorOf(agents + conn(viaAgent, "mysql"))).toMatch(
      /^gatehouse.yaml: connections\[0\].secrets: secrets: agent is not supported for mysql connections yet/,
    );
  });
});

describe("parseConfig: defaults", () => {
  it("fills in defaults and resolves data relative to the config directory", () => {
    const config = parseConfig(PG, { baseDir: "/etc/gatehouse", env: { APP_DB_PASSWORD: "pw" } });
    expect(config.listen.api).toEqual({ host: "127.0.0.1", port: 18000 });
    expect(config.data).toBe("/etc/gatehouse/data");
    const c = config.connections[0];
    expect(c?.type).toBe("postgres");
    if (c?.type !== "postgres") return;
    expect(c.target.password).toBe("pw");
    expect(c.on_unparseable).toBe("deny");
    expect(c.guardrails).toEqual([]);
  });

  it("applies approval and OIDC defaults", () => {
    const text =
      'identity: { oidc: [{ issuer: "https://idp.example.com", audience: gatehouse }] }\n' +
      conn("    approvals:\n      - require: { statements: [alter_table] }\n        approvers: [group:dba]\n");
    const config = parseConfig(text, { env: {} });
    const oidc = config.identity.oidc[0];
    expect(oidc).toMatchObject({ groups_claim: "groups", subject_claim: "sub", kind: "auto", clock_skew: 30_000 });
    expect(config.connections[0]?.approvals[0]).toMatchObject({
      min_approvals: 1,
      hold: 300_000,
      reason_required: false,
    });
  });
});

describe("parseConfig: errors name file and path on one line", () => {
  it("unknown key", () => {
    expect(errorOf(conn("", "postgres", "{ host: h, user: u, pasword: x }"))).toBe(
      'gatehouse.yaml: connections[0].target: unknown key "pasword"',
    );
    expect(errorOf("listen: {}\nlisten2: 1\n")).toBe('gatehouse.yaml: unknown key "listen2"');
  });

  it("bad statement kind lists the vocabulary", () => {
    const msg = errorOf(
      conn("    guardrails:\n      - deny: { statements: [drop] }\n      - deny: { statements: [drop, dorp] }\n"),
    );
    expect(msg).toMatch(
      /^gatehouse\.yaml: connections\[0\]\.guardrails\[1\]\.deny\.statements\[1\]: unknown statement kind "dorp" \(expected one of select, insert, update, delete, .*security_label, load, unknown\)$/,
    );
  });

  it("statement globs must match something in the vocabulary", () => {
    expect(() =>
      parseConfig(conn("    guardrails:\n      - deny: { statements: [create_*, ALTER_*] }\n")),
    ).not.toThrow();
    expect(errorOf(conn("    guardrails:\n      - deny: { statements: [foo_*] }\n"))).toContain(
      'statement kind pattern "foo_*" matches no statement kind',
    );
  });

  it("matcher key that does not fit the connection type", () => {
    expect(errorOf(conn("    guardrails:\n      - deny: { commands: [rm] }\n"))).toBe(
      'gatehouse.yaml: connections[0].guardrails[0].deny.commands: matcher key "commands" does not apply to a postgres connection (valid: statements, tables, functions, without_where)',
    );
    expect(
      errorOf(conn("    approvals:\n      - { require: { statement: [drop] }, approvers: [group:x] }\n")),
    ).toContain('connections[0].approvals[0].require.statement: unknown matcher key "statement"');
    const ssh = `{ host: h, user: u, password: p, host_key: "SHA256:${"A".repeat(43)}" }`;
    expect(errorOf(conn("    guardrails:\n      - deny: { tables: [users] }\n", "ssh", ssh))).toContain(
      'matcher key "tables" does not apply to a ssh connection',
    );
  });

  it("functions: names or schema.names with globs; only on postgres connections", () => {
    const config = parseConfig(
      conn(
        '    guardrails:\n      - deny: { functions: [pg_read_file, pg_catalog.set_config, "dblink*"] }\n' +
          "    approvals:\n      - { require: { statements: [select], functions: [pg_sleep] }, approvers: [group:x] }\n",
      ),
    );
    const c = config.connections[0];
    expect(c?.guardrails[0]?.deny.functions).toEqual(["pg_read_file", "pg_catalog.set_config", "dblink*"]);
    expect(c?.approvals[0]?.require).toEqual({ statements: ["select"], functions: ["pg_sleep"] });
    for (const bad of ["pg_read_file()", "a.b.c", ".f", "f g", "''"]) {
      expect(errorOf(conn(`    guardrails:\n      - deny: { functions: [pg_sleep, "${bad}"] }\n`)), bad).toMatch(
        /^gatehouse\.yaml: connections\[0\]\.guardrails\[0\]\.deny\.functions\[1\]: invalid function .* \(expected function or schema\.function, e\.g\. pg_read_file or pg_catalog\.set_config\)$/,
      );
    }
    expect(errorOf(conn("    guardrails:\n      - deny: { functions: [] }\n"))).toMatch(
      /^gatehouse\.yaml: connections\[0\]\.guardrails\[0\]\.deny\.functions: /,
    );
    expect(errorOf(conn("    guardrails:\n      - deny: { functions: pg_sleep }\n"))).toMatch(
      /^gatehouse\.yaml: connections\[0\]\.guardrails\[0\]\.deny\.functions: /,
    );
    // the MySQL analyzer reports no calls: a functions rule there would never fire
    expect(errorOf(conn("    guardrails:\n      - deny: { functions: [sleep] }\n", "mysql"))).toBe(
      'gatehouse.yaml: connections[0].guardrails[0].deny.functions: matcher key "functions" does not apply to a mysql connection (valid: statements, tables, without_where)',
    );
  });

  it("without_where needs update or delete", () => {
    expect(errorOf(conn("    guardrails:\n      - deny: { statements: [select], without_where: true }\n"))).toBe(
      "gatehouse.yaml: connections[0].guardrails[0].deny.without_where: without_where needs statements that include update or delete",
    );
  });

  it("audit.durability: fsync by default, os when asked, anything else named", () => {
    expect(parseConfig("data: ./d\n").audit.durability).toBe("fsync");
    expect(parseConfig("audit: { durability: os }\n").audit.durability).toBe("os");
    expect(errorOf("audit: { durability: never }\n")).toBe(
      'gatehouse.yaml: audit.durability: invalid value "never" (expected one of fsync, os)',
    );
  });

  it("settings this build does not enforce are refused, naming their path, instead of being ignored", () => {
    const agentOffice = `listen: { agents: "127.0.0.1:18443" }\nagents: { tokens: [{ name: office, sha256: ${"a".repeat(64)} }] }\n`;
    expect(errorOf(agentOffice + conn("    via: agent/office\n    secrets: agent\n", "mysql"))).toMatch(
      /^gatehouse.yaml: connections\[0\].secrets: secrets: agent is not supported for mysql connections yet/,
    );
    const retention = /retention is not enforced yet: nothing would be purged, so the setting is refused/;
    expect(errorOf("audit: { retention: 400d }\n")).toMatch(
      new RegExp(`^gatehouse.yaml: audit.retention: ${retention.source}`),
    );
    expect(errorOf("recordings: { retention: 30d }\n")).toMatch(
      new RegExp(`^gatehouse.yaml: recordings.retention: ${retention.source}`),
    );
    expect(errorOf("store: postgres://u@db.example/gatehouse\n")).toMatch(
      /^gatehouse.yaml: store: a PostgreSQL store is not supported yet/,
    );
  });

  it("bad duration and out-of-range values", () => {
    expect(errorOf("audit: { retention: 5x }\n")).toBe(
      'gatehouse.yaml: audit.retention: invalid duration "5x" (expected e.g. 30s, 5m, 2h, 400d, 1h30m or 0)',
    );
    expect(errorOf("identity: { oidc: [{ issuer: https://i.example, audience: a, clock_skew: 10m }] }\n")).toContain(
      'identity.oidc[0].clock_skew: "10m" is longer than the maximum 5m',
    );
    expect(errorOf("listen: { api: 127.0.0.1:70000 }\n")).toContain("listen.api: invalid address");
    expect(errorOf(conn("", "postgres", "{ host: h, user: u, port: 0 }"))).toBe(
      "gatehouse.yaml: connections[0].target.port: must be at least 1",
    );
  });

  it("missing env reference and unreadable file reference", () => {
    expect(errorOf(PG)).toBe(
      "gatehouse.yaml: connections[0].target.password: environment variable APP_DB_PASSWORD is not set (${env:APP_DB_PASSWORD})",
    );
    expect(errorOf(conn("", "postgres", '{ host: h, user: u, password: "${file:nope.txt}" }'))).toMatch(
      /^gatehouse\.yaml: connections\[0\]\.target\.password: cannot read \$\{file:nope\.txt\} \(.*nope\.txt\): ENOENT$/,
    );
    expect(errorOf(conn("", "postgres", '{ host: h, user: u, password: "${vault:x}" }'))).toContain(
      'unknown reference "${vault:x}"',
    );
  });

  it("YAML syntax errors name line and column", () => {
    expect(errorOf("listen:\n  api: [127.0.0.1\nconnections: []\n")).toMatch(
      /^gatehouse\.yaml: line \d+, column \d+: YAML syntax error: /,
    );
    expect(errorOf("data: a\ndata: b\n")).toBe(
      "gatehouse.yaml: line 2, column 1: YAML syntax error: Map keys must be unique",
    );
    expect(errorOf("")).toBe("gatehouse.yaml: the file is empty (expected a mapping)");
  });

  it("wrong connection type, bad subjects, duplicates, unsatisfiable approvals", () => {
    expect(errorOf(conn("", "postgress"))).toBe(
      'gatehouse.yaml: connections[0].type: invalid value "postgress" (expected one of postgres, mysql, ssh, kubernetes, http)',
    );
    expect(errorOf(conn("").replace('["*"]', "[team:ci]"))).toContain(
      'connections[0].access[0]: invalid subject "team:ci"',
    );
    expect(
      errorOf(
        conn("") + "  - name: c\n    type: http\n    target: { url: https://x.example }\n    access: [kind:bot]\n",
      ),
    ).toBe('gatehouse.yaml: connections[1].name: duplicate connection "c" (also connections[0])');
    expect(
      errorOf(
        conn(
          "    approvals:\n      - { require: { statements: [drop] }, approvers: [user:alice], min_approvals: 2 }\n",
        ),
      ),
    ).toContain("connections[0].approvals[0].min_approvals: 2 approvals required but approvers name only 1 subject(s)");
    // an invalid approver must be reported, not crash the approvals check that counts approvers
    expect(
      errorOf(
        conn("    approvals:\n      - { require: { statements: [drop] }, approvers: [bogus], min_approvals: 3 }\n"),
      ),
    ).toMatch(/^gatehouse\.yaml: connections\[0\]\.approvals\[0\]\.approvers\[0\]: invalid subject "bogus"/);
    expect(errorOf("identity: 5\n")).toBe("gatehouse.yaml: identity: expected a mapping, got number 5");
    expect(errorOf("identity: { tokens: [{ name: a, sha256: ABC, groups: [ci] }] }\n")).toContain(
      "identity.tokens[0].sha256: expected the token's SHA-256 as 64 lowercase hex characters",
    );
  });

  it("ssh needs a pinned host key and credentials; issuers must be https unless loopback", () => {
    expect(errorOf(conn("", "ssh", "{ host: h, user: u, password: p }"))).toBe(
      "gatehouse.yaml: connections[0].target.host_key: required",
    );
    expect(errorOf(conn("", "ssh", `{ host: h, user: u, host_key: "SHA256:${"A".repeat(43)}" }`))).toContain(
      "connections[0].target: an ssh target needs private_key or password",
    );
    expect(errorOf("identity: { oidc: [{ issuer: http://idp.example.com, audience: a }] }\n")).toContain(
      "identity.oidc[0].issuer: must use https",
    );
    expect(() => parseConfig("identity: { oidc: [{ issuer: http://127.0.0.1:9000, audience: a }] }\n")).not.toThrow();
    expect(
      errorOf("identity: { oidc: [{ issuer: https://i.example, audience: a, algorithms: [HS256] }] }\n"),
    ).toContain('identity.oidc[0].algorithms[0]: invalid value "HS256"');
  });

  it("audit sinks: one kind each, valid syslog address and facility", () => {
    expect(errorOf("audit: { sinks: [{ syslog: { address: udp://host } }] }\n")).toMatch(
      /^gatehouse\.yaml: audit\.sinks\[0\]\.syslog\.address: invalid syslog address "udp:\/\/host"/,
    );
    expect(errorOf("audit: { sinks: [{ syslog: { address: udp://h:514, facility: nope } }] }\n")).toMatch(
      /audit\.sinks\[0\]\.syslog\.facility/,
    );
    expect(errorOf("audit: { sinks: [{ file: a.jsonl, http: { url: https://x } }] }\n")).toMatch(
      /audit\.sinks\[0\]: a sink has exactly one of file, http, syslog/,
    );
    const config = parseConfig("audit: { sinks: [{ syslog: { address: 'tcp://[::1]:6514', facility: local7 } }] }\n");
    expect(config.audit.sinks[0]).toEqual({
      type: "syslog",
      protocol: "tcp",
      host: "::1",
      port: 6514,
      facility: "local7",
    });
  });

  it("masking columns only on SQL connections", () => {
    expect(errorOf(conn("    masking: { columns: [users.email] }\n", "http", "{ url: https://x.example }"))).toContain(
      "connections[0].masking.columns: column masking applies only to postgres and mysql",
    );
  });
});

describe("references", () => {
  it("resolves env and file references (relative to the config) and remembers their spelling", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gh-policy-"));
    writeFileSync(
      join(dir, "key.pem"),
      "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n\n",
    );
    writeFileSync(
      join(dir, "gh.yaml"),
      conn(
        "",
        "ssh",
        `{ host: "\${env:HOST}", user: u, private_key: "\${file:key.pem}", host_key: "SHA256:${"A".repeat(43)}" }`,
      ),
    );
    const config = await loadConfig(join(dir, "gh.yaml"), { env: { HOST: "10.1.2.3" } });
    const c = config.connections[0];
    if (c?.type !== "ssh") throw new Error("expected ssh");
    expect(c.target.host).toBe("10.1.2.3");
    expect(c.target.private_key).toBe("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----");
    expect(configMeta(config)?.references.get("connections[0].target.private_key")).toBe("${file:key.pem}");
    expect(config.data).toBe(join(dir, "data"));
  });

  it("interpolates inside strings and keeps $${ literal", () => {
    const config = parseConfig(
      conn("", "http", '{ url: https://x.example, headers: { Authorization: "Bearer ${env:T}", X-Lit: "$${env:T}" } }'),
      { env: { T: "tok" } },
    );
    const c = config.connections[0];
    if (c?.type !== "http") throw new Error("expected http");
    expect(c.target.headers).toEqual({ Authorization: "Bearer tok", "X-Lit": "${env:T}" });
  });
});
