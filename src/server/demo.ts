import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadConfig } from "../core/policy/loader.js";
import type { HostPort } from "../core/policy/schema.js";
import { startDemoTarget, type DemoTarget } from "./demo-target.js";
import { Gateway } from "./gateway.js";

export const DEMO_SUBJECT = "demo-bot";
/** A second identity, in the approvers' group: nobody may approve their own request. */
export const DEMO_APPROVER = "demo-dba";

function hostPort(a: HostPort): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * The demo's configuration, written to DATA/gatehouse.yaml so every printed command (policy check/test,
 * audit verify) works on it as on any operator's file. Port 0 (tests) is passed to the gateway directly.
 */
function demoConfig(api: HostPort, postgres: HostPort, target: DemoTarget): string {
  const listen = [
    api.port > 0 ? `  api: ${hostPort(api)}` : "",
    postgres.port > 0 ? `  postgres: ${hostPort(postgres)}` : "",
  ]
    .filter(Boolean)
    .join("\n");
  return `# Written by \`gatehouse demo\`; it is rewritten on every demo start.
${listen ? `listen:\n${listen}\n` : ""}data: .
connections:
  - name: demo-db
    type: postgres
    # the embedded PGlite database the demo started (trust auth on loopback, like a local dev server)
    target: { host: ${target.host}, port: ${target.port}, database: postgres, user: postgres }
    access: [group:demo]
    guardrails:
      - deny: { statements: [drop, truncate, grant, revoke, alter_role] }
      - deny: { statements: [delete, update], without_where: true }
    approvals:
      - require: { statements: [alter_table, create_index] }
        approvers: [group:dba]
        hold: 10m
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
  postgres: HostPort;
  /** How the user runs the CLI, for the printed commands. */
  cli: string;
}

export interface RunningDemo {
  gateway: Gateway;
  token: string;
  /** The demo DBA's token: it may approve what the bot's statements wait for. */
  approverToken: string;
  /** "host:port" of the gateway's PostgreSQL listener. */
  postgres: string;
  walkthrough: string;
  stop(): Promise<void>;
}

export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const target = await startDemoTarget();
  let gateway: Gateway;
  try {
    const configPath = join(dataDir, "gatehouse.yaml");
    writeFileSync(configPath, demoConfig(options.api, options.postgres, target));
    writeFileSync(join(dataDir, "policy-cases.yaml"), DEMO_CASES);
    const config = await loadConfig(configPath);
    gateway = await Gateway.start(config, { apiListen: options.api, listen: { postgres: options.postgres } });
  } catch (err) {
    await target.stop();
    throw err;
  }
  const mint = async (subject: string, groups: string[], kind: "bot" | "human") => {
    const minted = await gateway.tokens.mint({ subject, groups, kind, ttlMs: 3_600_000 });
    await gateway.record({
      type: "token.issued",
      identity: { subject, kind, groups, issuer: "gatehouse", token_id: minted.jti },
      data: { by: "gatehouse demo", expires_at: minted.expiresAt.toISOString() },
    });
    return minted.token;
  };
  const token = await mint(DEMO_SUBJECT, ["demo"], "bot");
  const approverToken = await mint(DEMO_APPROVER, ["dba"], "human");
  const postgres = gateway.address("postgres") ?? "";
  const walkthrough = renderWalkthrough({
    api: `http://${gateway.api.address}`,
    postgres,
    token,
    approverToken,
    dataDir,
    cli: options.cli,
    notBuilt: gateway.listeners.filter((l) => l.state === "not built yet").map((l) => l.protocol),
  });
  return {
    gateway,
    token,
    approverToken,
    postgres,
    walkthrough,
    stop: async () => {
      await gateway.stop("demo stopped");
      await target.stop();
    },
  };
}

function renderWalkthrough(w: {
  api: string;
  postgres: string;
  token: string;
  approverToken: string;
  dataDir: string;
  cli: string;
  notBuilt: string[];
}): string {
  const [pgHost, pgPort] = [
    w.postgres.slice(0, w.postgres.lastIndexOf(":")),
    w.postgres.slice(w.postgres.lastIndexOf(":") + 1),
  ];
  const config = join(w.dataDir, "gatehouse.yaml");
  return [
    `Gatehouse demo is running.`,
    `  PostgreSQL listener: ${w.postgres} -> connection "demo-db" (an embedded PGlite database with a users table)`,
    `  Admin API: ${w.api}    data, config and evidence: ${w.dataDir}`,
    ``,
    `Demo identity "${DEMO_SUBJECT}" (group demo) holds a gateway-minted token valid for 1 hour. In another terminal:`,
    `  export PGPASSWORD=${w.token}`,
    `  psql "host=${pgHost} port=${pgPort} dbname=demo-db user=${DEMO_SUBJECT}"`,
    ``,
    `Then try (the token is the password; the database's own credentials stay in the gateway):`,
    `  SELECT * FROM users;                  -- email and password masked by column, the card number by content`,
    `  SELECT name, email AS e FROM customer_contacts;   -- masked through an alias and a view too`,
    `  DROP TABLE users;                     -- refused: SQLSTATE 42501 naming the guardrail`,
    `  DELETE FROM orders;                   -- refused: delete without WHERE`,
    `  DELETE FROM orders WHERE id = 12;     -- allowed, and recorded`,
    `  ALTER TABLE users ADD COLUMN x int;   -- held until a DBA approves: psql waits and prints the request id`,
    ``,
    `Approve it as the demo DBA "${DEMO_APPROVER}" (a different identity: nobody approves their own request), in a third terminal:`,
    `  export GATEHOUSE_URL=${w.api} GATEHOUSE_TOKEN=${w.approverToken}`,
    `  ${w.cli} approvals ls`,
    `  ${w.cli} approvals approve REQUEST_ID --reason "reviewed"     (or: approvals deny REQUEST_ID --reason ...)`,
    ``,
    `What the gateway recorded, and proof that nobody changed it:`,
    `  ${w.cli} audit tail --data ${w.dataDir}`,
    `  ${w.cli} audit verify --data ${w.dataDir}`,
    `The policy, and the decisions it makes for sample requests:`,
    `  ${w.cli} policy check --config ${config}`,
    `  ${w.cli} policy test --config ${config} ${join(w.dataDir, "policy-cases.yaml")}`,
    `  ${w.cli} replay SESSION_ID --data ${w.dataDir}     (SESSION_ID: the session_id in the audit log)`,
    `Which identity a token carries:  curl -s -H "Authorization: Bearer $PGPASSWORD" ${w.api}/api/whoami`,
    ``,
    ...(w.notBuilt.length ? [`Not built yet: the ${w.notBuilt.join(", ")} adapters.`] : []),
    `Press Ctrl-C to stop.`,
  ].join("\n");
}
