import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadConfig } from "../core/policy/loader.js";
import type { HostPort } from "../core/policy/schema.js";
import { Gateway } from "./gateway.js";

export const DEMO_SUBJECT = "demo-bot";

/**
 * The demo's configuration, written to DATA/gatehouse.yaml so every printed command (policy check/test,
 * audit verify) works on it as on any operator's file.
 */
function demoConfig(api: HostPort): string {
  return `# Written by \`gatehouse demo\`; it is rewritten on every demo start.
${api.port > 0 ? `listen:\n  api: ${api.host}:${api.port}\n` : ""}data: .
connections:
  - name: demo-db
    type: postgres
    target: { host: 127.0.0.1, port: 5432, database: demo, user: demo, password: "\${file:demo-db.password}" }
    access: [group:demo]
    guardrails:
      - deny: { statements: [drop, truncate, grant, revoke, alter_role] }
      - deny: { statements: [delete, update], without_where: true }
    approvals:
      - require: { statements: [alter_table, create_index] }
        approvers: [group:dba]
        hold: 5m
    masking:
      columns: ["users.email", "*.password"]
      detectors: [credit_card, email, jwt, private_key]
`;
}

const DEMO_CASES = `cases:
  - name: the demo bot may read
    identity: { subject: ${DEMO_SUBJECT}, groups: [demo] }
    connection: demo-db
    request: { statements: [{ kind: select, tables: [users] }] }
    expect: allow
  - name: dropping a table is a guardrail
    identity: { subject: ${DEMO_SUBJECT}, groups: [demo] }
    connection: demo-db
    request: { statements: [{ kind: drop, tables: [users] }] }
    expect: deny
    rule: connections[0].guardrails[0]
  - name: delete without where is refused
    identity: { subject: ${DEMO_SUBJECT}, groups: [demo] }
    connection: demo-db
    request: { statements: [{ kind: delete, tables: [users], hasWhere: false }] }
    expect: deny
    rule: connections[0].guardrails[1]
  - name: schema changes wait for a DBA
    identity: { subject: ${DEMO_SUBJECT}, groups: [demo] }
    connection: demo-db
    request: { statements: [{ kind: alter_table, tables: [users] }] }
    expect: approve
  - name: an identity outside the group has no access
    identity: { subject: someone-else, groups: [web] }
    connection: demo-db
    request: { statements: [{ kind: select, tables: [users] }] }
    expect: deny
    rule: connections[0].access
`;

export interface DemoOptions {
  dataDir: string;
  api: HostPort;
  /** How the user runs the CLI, for the printed commands. */
  cli: string;
}

export interface RunningDemo {
  gateway: Gateway;
  token: string;
  walkthrough: string;
}

export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const configPath = join(dataDir, "gatehouse.yaml");
  const casesPath = join(dataDir, "policy-cases.yaml");
  writeFileSync(configPath, demoConfig(options.api));
  writeFileSync(casesPath, DEMO_CASES);
  // kept beside the config, as an operator would keep a secret file; a placeholder until an adapter dials it
  writeFileSync(join(dataDir, "demo-db.password"), "demo\n", { mode: 0o600 });
  const config = await loadConfig(configPath);
  const gateway = await Gateway.start(config, { apiListen: options.api });
  const minted = await gateway.tokens.mint({
    subject: DEMO_SUBJECT,
    groups: ["demo"],
    kind: "bot",
    ttlMs: 60 * 60 * 1000,
  });
  await gateway.record({
    type: "token.issued",
    identity: { subject: DEMO_SUBJECT, kind: "bot", groups: ["demo"], issuer: "gatehouse", token_id: minted.jti },
    data: { by: "gatehouse demo", expires_at: minted.expiresAt.toISOString() },
  });
  const api = `http://${gateway.api.address}`;
  const cli = options.cli;
  const notBuilt = gateway.listeners.filter((l) => l.state === "not built yet").map((l) => l.protocol);
  const walkthrough = [
    `Gatehouse demo is running. Admin API: ${api}   data: ${dataDir}`,
    ``,
    `Demo identity "${DEMO_SUBJECT}" (group demo), a gateway-minted token valid for 1 hour:`,
    `  export GATEHOUSE_TOKEN=${minted.token}`,
    ``,
    `Try, in another terminal (from this directory):`,
    `  1. Which identity does the token carry?`,
    `       curl -s -H "Authorization: Bearer $GATEHOUSE_TOKEN" ${api}/api/whoami`,
    `  2. A forged token is refused, and the refusal is recorded:`,
    `       curl -s -H "Authorization: Bearer forged.token.value" ${api}/api/whoami`,
    `  3. The demo policy, and the decisions it makes for sample requests:`,
    `       ${cli} policy check --config ${configPath}`,
    `       ${cli} policy test --config ${configPath} ${casesPath}`,
    `  4. The tamper-evident audit log (gateway start, token issued, failed logins...):`,
    `       ${cli} audit tail --data ${dataDir}`,
    `       ${cli} audit verify --data ${dataDir}`,
    ``,
    `Not built yet: the ${notBuilt.join(", ")} adapters. Until they land the gateway verifies identities,`,
    `decides policy and keeps evidence, but proxies no protocol. Press Ctrl-C to stop.`,
  ].join("\n");
  return { gateway, token: minted.token, walkthrough };
}
