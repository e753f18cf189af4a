import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "./main.js";

// The example config takes its secrets from these; the values must never appear in any output.
const SECRETS = {
  APP_DB_PASSWORD: "pg-pass-7d1f",
  REPORTS_DB_PASSWORD: "my-pass-91ab",
  DEPLOY_SSH_KEY: "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-body-5c2e\n-----END OPENSSH PRIVATE KEY-----",
  KUBE_TOKEN: "kube-token-3e4f",
  BILLING_API_KEY: "billing-key-aa01",
  SIEM_TOKEN: "siem-token-77bc",
};

const EXAMPLE = "examples/gatehouse.yaml";
const CASES = "examples/policy-cases.yaml";

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(["node", "gatehouse", ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "gh-policy-cli-"));
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeEach(() => {
  for (const [k, v] of Object.entries(SECRETS)) vi.stubEnv(k, v);
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe("gatehouse policy check", () => {
  it("passes on the example config and prints effective rules with secrets redacted", async () => {
    const r = await cli("policy", "check", "--config", EXAMPLE);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("examples/gatehouse.yaml: OK (5 connections");
    expect(r.stdout).toContain("connection app-db (postgres)");
    expect(r.stdout).toContain("password=${env:APP_DB_PASSWORD}");
    expect(r.stdout).toContain("headers.Authorization=Bearer ${env:BILLING_API_KEY}");
    expect(r.stdout).toContain(
      "connections[0].guardrails[0]: deny statements drop, truncate, grant, revoke, alter_role",
    );
    expect(r.stdout).toContain(
      "connections[0].guardrails[3]: deny functions pg_terminate_backend, pg_cancel_backend, pg_read_file,",
    );
    expect(r.stdout).toContain("unparseable  approve");
    for (const secret of Object.values(SECRETS)) expect(r.stdout).not.toContain(secret.split("\n")[1] ?? secret);
  });

  it("--json gives the same rules as data, still redacted", async () => {
    const r = await cli("policy", "check", "--config", EXAMPLE, "--json");
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as { connections: { name: string; target: Record<string, unknown> }[] };
    expect(json.connections.map((c) => c.name)).toEqual([
      "app-db",
      "reports-db",
      "app-host",
      "prod-cluster",
      "billing-api",
    ]);
    expect(json.connections[2]?.target["private_key"]).toBe("${env:DEPLOY_SSH_KEY}");
    expect(json.connections[3]?.target["token"]).toBe("${env:KUBE_TOKEN}");
    for (const secret of Object.values(SECRETS)) expect(r.stdout).not.toContain(secret);
  });

  it("shows <redacted> for literal secrets", async () => {
    const path = tmpFile(
      "literal.yaml",
      "connections:\n  - { name: db, type: postgres, target: { host: h, user: u, password: hunter2 }, access: [group:ci] }\n",
    );
    const r = await cli("policy", "check", "--config", path);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("password=<redacted>");
    expect(r.stdout).not.toContain("hunter2");
  });

  it("a bad config is exactly one line on stderr naming file and path, exit 1", async () => {
    const path = tmpFile(
      "bad.yaml",
      "connections:\n  - name: db\n    type: postgres\n    target: { host: h, user: u }\n    access: [group:ci]\n    guardrails:\n      - deny: { statements: [dorp] }\n",
    );
    const r = await cli("policy", "check", "--config", path);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.endsWith("\n")).toBe(true);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^gatehouse: ${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: connections\\[0\\]\\.guardrails\\[0\\]\\.deny\\.statements\\[0\\]: unknown statement kind "dorp"`,
      ),
    );
  });

  it("a missing env var fails with the path of the reference", async () => {
    vi.stubEnv("APP_DB_PASSWORD", undefined);
    const r = await cli("policy", "check", "--config", EXAMPLE);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "gatehouse: examples/gatehouse.yaml: connections[0].target.password: environment variable APP_DB_PASSWORD is not set (${env:APP_DB_PASSWORD})\n",
    );
  });

  it("a missing config file is one line too", async () => {
    const r = await cli("policy", "check", "--config", "/nonexistent/gatehouse.yaml");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("gatehouse: /nonexistent/gatehouse.yaml: cannot read config: ENOENT\n");
  });
});

describe("gatehouse policy test", () => {
  it("the example cases pass against the example config", async () => {
    const r = await cli("policy", "test", "--config", EXAMPLE, CASES);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^26 passed, 0 failed$/m);
    expect(r.stdout).not.toContain("FAIL");
  });

  it("reports failures per case, a summary, and exits 1", async () => {
    const cases = tmpFile(
      "cases.yaml",
      `cases:
  - name: drop allowed?
    identity: { token: ci-bot }
    connection: app-db
    request: { statements: [{ kind: drop, tables: [users] }] }
    expect: allow
  - name: select is fine
    identity: { subject: someone, groups: [ci] }
    connection: app-db
    request: { statements: [{ kind: select, tables: [users] }] }
    expect: allow
  - name: wrong rule
    identity: { token: ci-bot }
    connection: app-db
    request: { statements: [{ kind: drop, tables: [users] }] }
    expect: deny
    rule: connections[0].guardrails[1]
`,
    );
    const r = await cli("policy", "test", "--config", EXAMPLE, cases);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(
      "FAIL drop allowed?: expected allow, got deny by connections[0].guardrails[0] (deny statements drop, truncate, grant, revoke, alter_role)",
    );
    expect(lines[1]).toBe("PASS select is fine: allow by connections[0].access (access via group:ci)");
    expect(lines[2]).toMatch(
      /^FAIL wrong rule: expected deny by connections\[0\]\.guardrails\[1\], got deny by connections\[0\]\.guardrails\[0\]/,
    );
    expect(lines[3]).toBe("1 passed, 2 failed");
    expect(r.stderr).toBe("gatehouse: 2 of 3 policy test cases failed\n");
  });

  it("validates the cases file strictly", async () => {
    const cases = tmpFile(
      "cases.yaml",
      "cases:\n  - { name: x, identity: { token: ci-bot }, connection: app-db, request: {}, expect: alow }\n",
    );
    const r = await cli("policy", "test", "--config", EXAMPLE, cases);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `gatehouse: ${cases}: cases[0].expect: invalid value "alow" (expected one of allow, deny, approve)\n`,
    );

    const unknown = tmpFile(
      "cases.yaml",
      "cases:\n  - { name: x, identity: { token: nobody }, connection: app-db, expect: deny }\n",
    );
    const r2 = await cli("policy", "test", "--config", EXAMPLE, unknown);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(`${unknown}: cases[0].identity.token: no static token named "nobody"`);
  });
});

describe("help", () => {
  it("every policy command has --help", async () => {
    for (const args of [
      ["policy", "--help"],
      ["policy", "check", "--help"],
      ["policy", "test", "--help"],
    ]) {
      const r = await cli(...args);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Usage: gatehouse policy");
    }
  });
});
