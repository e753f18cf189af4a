import { describe, expect, it } from "vitest";
import type { Identity } from "../identity/identity.js";
import { CompiledPolicy, decide, type Decision } from "./decide.js";
import { factsFrom, type RequestFacts } from "./facts.js";
import { compileGlob, GlobSet } from "./glob.js";
import { parseConfig } from "./loader.js";

const HOST_KEY = `SHA256:${"A".repeat(43)}`;

const config = parseConfig(
  `
connections:
  - name: db
    type: postgres
    target: { host: h, user: u }
    access: [group:ci, user:alice, kind:human]
    guardrails:
      - deny: { statements: [drop, truncate] }
      - deny: { statements: [delete, update], without_where: true }
      - deny: { statements: ["*"], tables: [public.secrets] }
      - deny: { statements: [select], tables: ["*.api_keys"] }
    approvals:
      - require: { statements: ["alter_*", create_index] }
        approvers: [group:dba]
        hold: 0
      - require: { statements: [insert] }
        approvers: [group:dba]
  - name: lax
    type: postgres
    target: { host: h, user: u }
    access: ["*"]
    approvals: [{ require: { statements: [drop] }, approvers: [group:dba] }]
    guardrails: [{ deny: { statements: [truncate] } }]
    on_unparseable: approve
  - name: open
    type: mysql
    target: { host: h, user: u }
    access: ["*"]
    guardrails: [{ deny: { statements: [drop] } }]
    on_unparseable: allow
  - name: host
    type: ssh
    target: { host: h, user: u, password: p, host_key: "${HOST_KEY}" }
    access: [group:ci]
    guardrails:
      - deny: { commands: [reboot, "mkfs*"] }
      - deny: { patterns: ["rm -rf *", "curl * | sh"] }
      - deny: { commands: [cat], patterns: ["* /etc/shadow"] }
  - name: k8s
    type: kubernetes
    target: { server: "https://k8s.example:6443" }
    access: [group:ci]
    guardrails:
      - deny: { verbs: [delete], namespaces: [kube-system] }
      - deny: { resources: [secrets] }
    approvals:
      - require: { resources: [pods/exec] }
        approvers: [group:sre]
  - name: api
    type: http
    target: { url: "https://api.example" }
    access: [group:ci]
    guardrails:
      - deny: { methods: [delete] }
      - deny: { paths: ["/admin/*"] }
    approvals:
      - require: { methods: [POST], paths: ["/v1/refunds*"] }
        approvers: [group:finance]
  - name: fn
    type: postgres
    target: { host: h, user: u }
    access: [group:ci]
    guardrails:
      - deny: { functions: [pg_terminate_backend, "PG_READ_*"] }
      - deny: { functions: [pg_catalog.set_config] }
      - deny: { statements: [update], tables: [accounts], functions: [audit.log_change] }
    approvals:
      - require: { functions: [pg_sleep] }
        approvers: [group:dba]
`,
  { env: {} },
);
const policy = CompiledPolicy.for(config);

const ci: Identity = { subject: "ci-bot", kind: "bot", groups: ["ci"], issuer: "gatehouse", tokenId: "ci-bot" };
const stranger: Identity = { subject: "eve", kind: "bot", groups: ["other"], issuer: "gatehouse", tokenId: "eve" };

const sql = (...statements: RequestFacts["statements"]) => factsFrom({ statements });
function run(conn: string, facts: RequestFacts, who: Identity = ci): Decision {
  return policy.decide(who, conn, facts);
}
function ruleOf(d: Decision): string | undefined {
  return d.rule?.path;
}

describe("access", () => {
  it("denies identities not in the access list, with the access path", () => {
    const d = run("db", sql({ kind: "select", tables: ["t"] }), stranger);
    expect(d).toMatchObject({ outcome: "deny", rule: { path: "connections[0].access" } });
    expect(d.outcome === "deny" && d.reason).toContain('no access to connection "db"');
  });

  it("admits by group, subject alias and kind, and says which entry", () => {
    expect(policy.checkAccess(ci, "db")).toMatchObject({ outcome: "allow", rule: { summary: "access via group:ci" } });
    const alice = { ...stranger, subject: "alice" };
    expect(policy.checkAccess(alice, "db")).toMatchObject({ rule: { summary: "access via subject:alice" } });
    const human = { ...stranger, kind: "human" as const };
    expect(policy.checkAccess(human, "db")).toMatchObject({ rule: { summary: "access via kind:human" } });
  });

  it("denies unknown connections", () => {
    expect(run("nope", sql())).toMatchObject({ outcome: "deny", rule: { path: "connections" } });
  });
});

describe("sql guardrails and approvals", () => {
  it("denies listed statement kinds with a readable summary", () => {
    const d = run("db", sql({ kind: "DROP", tables: ["users"] }));
    expect(d).toMatchObject({
      outcome: "deny",
      rule: { path: "connections[0].guardrails[0]", summary: "deny statements drop, truncate" },
    });
  });

  it("denies a multi-statement request if any statement matches", () => {
    const d = run("db", sql({ kind: "select", tables: ["a"] }, { kind: "truncate", tables: ["a"] }));
    expect(ruleOf(d)).toBe("connections[0].guardrails[0]");
  });

  it("without_where: denies only update/delete lacking WHERE (unknown counts as missing)", () => {
    expect(ruleOf(run("db", sql({ kind: "delete", tables: ["t"], hasWhere: false })))).toBe(
      "connections[0].guardrails[1]",
    );
    expect(ruleOf(run("db", sql({ kind: "update", tables: ["t"] })))).toBe("connections[0].guardrails[1]");
    expect(run("db", sql({ kind: "delete", tables: ["t"], hasWhere: true })).outcome).toBe("allow");
  });

  it("matches tables with or without schema, case-insensitively", () => {
    expect(ruleOf(run("db", sql({ kind: "select", tables: ["PUBLIC.Secrets"] })))).toBe("connections[0].guardrails[2]");
    // an unqualified name may resolve to public.secrets through search_path
    expect(ruleOf(run("db", sql({ kind: "select", tables: ["secrets"] })))).toBe("connections[0].guardrails[2]");
    expect(run("db", sql({ kind: "select", tables: ["other.secrets"] })).outcome).toBe("allow");
    expect(ruleOf(run("db", sql({ kind: "select", tables: ["billing.api_keys"] })))).toBe(
      "connections[0].guardrails[3]",
    );
    expect(ruleOf(run("db", sql({ kind: "select", tables: ["api_keys"] })))).toBe("connections[0].guardrails[3]");
  });

  it("holds requests matching an approval rule, first match wins", () => {
    const d = run("db", sql({ kind: "alter_table", tables: ["users"] }));
    expect(d).toMatchObject({ outcome: "approve", rule: { path: "connections[0].approvals[0]" } });
    if (d.outcome !== "approve") return;
    expect(d.approval).toMatchObject({ approvers: ["group:dba"], min_approvals: 1, hold: 0 });
    expect(d.rule.summary).toBe("require approval for statements alter_*, create_index (1 of group:dba, no hold)");
    expect(ruleOf(run("db", sql({ kind: "insert", tables: ["t"] })))).toBe("connections[0].approvals[1]");
  });

  it("a guardrail beats an approval rule in the same request", () => {
    const d = run("db", sql({ kind: "insert", tables: ["t"] }, { kind: "drop", tables: ["t"] }));
    expect(d.outcome).toBe("deny");
  });

  it("unknown statement kinds are treated as `unknown`", () => {
    expect(run("db", sql({ kind: "frobnicate", tables: [] })).outcome).toBe("allow");
    expect(run("db", sql({ kind: "frobnicate", tables: ["secrets"] })).outcome).toBe("deny");
  });
});

describe("sql functions", () => {
  const calls = (...statements: RequestFacts["statements"]) => run("fn", sql(...statements));
  const select = (...functions: string[]) => ({ kind: "select", tables: [], functions });

  it("a name without a schema matches the function in any schema, case-insensitively, globs per part", () => {
    for (const f of [
      "pg_terminate_backend",
      "pg_catalog.pg_terminate_backend",
      "PG_TERMINATE_BACKEND",
      "x.y.pg_terminate_backend",
    ]) {
      expect(ruleOf(calls(select("now", f))), f).toBe("connections[6].guardrails[0]");
    }
    expect(ruleOf(calls(select("pg_read_binary_file")))).toBe("connections[6].guardrails[0]");
    expect(calls(select("pg_terminate_backend_x", "my_pg_read_file")).outcome).toBe("allow");
  });

  it("the reason names the function and the statement calling it", () => {
    const d = calls({ kind: "select", tables: ["pg_stat_activity"], functions: ["pg_catalog.pg_terminate_backend"] });
    expect(d).toMatchObject({
      outcome: "deny",
      rule: { summary: "deny functions pg_terminate_backend, PG_READ_*" },
      reason:
        "statement select on pg_stat_activity calling pg_catalog.pg_terminate_backend is denied by connections[6].guardrails[0] (deny functions pg_terminate_backend, PG_READ_*)",
    });
  });

  it("a schema-qualified name matches that schema and unqualified calls (search_path), not another schema", () => {
    expect(ruleOf(calls(select("pg_catalog.set_config")))).toBe("connections[6].guardrails[1]");
    expect(ruleOf(calls(select("Pg_Catalog.Set_Config")))).toBe("connections[6].guardrails[1]");
    // pg_catalog is searched first: a bare set_config() is this function in every session
    expect(ruleOf(calls(select("set_config")))).toBe("connections[6].guardrails[1]");
    expect(ruleOf(calls(select("app.pg_catalog.set_config")))).toBe("connections[6].guardrails[1]");
    expect(calls(select("app.set_config")).outcome).toBe("allow");
  });

  it("with statements and tables, all keys must hold for the same statement", () => {
    const update = { kind: "update", tables: ["public.accounts"], hasWhere: true };
    const d = calls({ ...update, functions: ["log_change"] });
    expect(d).toMatchObject({
      rule: {
        path: "connections[6].guardrails[2]",
        summary: "deny statements update on tables accounts calling functions audit.log_change",
      },
    });
    expect(d.outcome === "deny" && d.reason).toContain("statement update on public.accounts calling log_change");
    expect(calls({ ...update, functions: ["other.log_change"] }).outcome).toBe("allow");
    expect(calls({ ...update, tables: ["ledger"], functions: ["log_change"] }).outcome).toBe("allow");
    expect(calls({ ...update, kind: "insert", functions: ["log_change"] }).outcome).toBe("allow");
    // the call and the table in different statements of one request do not make a match
    expect(calls(update, select("audit.log_change")).outcome).toBe("allow");
  });

  it("approval rules match calls too; statements without calls never match a functions rule", () => {
    const d = calls(select("pg_sleep"));
    expect(d).toMatchObject({
      outcome: "approve",
      rule: {
        path: "connections[6].approvals[0]",
        summary: "require approval for functions pg_sleep (1 of group:dba, hold 5m)",
      },
      reason: "statement select calling pg_sleep needs approval (connections[6].approvals[0])",
    });
    expect(calls({ kind: "select", tables: ["t"] }, { kind: "call", tables: [], functions: [] }).outcome).toBe("allow");
  });
});

describe("unparseable requests", () => {
  const bad = factsFrom({ unparseable: { reason: "syntax error" } });
  it("deny by default", () => {
    expect(run("db", bad)).toMatchObject({ outcome: "deny", rule: { path: "connections[0].on_unparseable" } });
  });
  it("approve uses the first approval rule, but guardrails on partial facts still deny", () => {
    const d = run("lax", bad);
    expect(d).toMatchObject({ outcome: "approve", rule: { path: "connections[1].on_unparseable" } });
    expect(d.outcome === "approve" && d.approval.approvers).toEqual(["group:dba"]);
    const partial = factsFrom({ unparseable: { reason: "x" }, statements: [{ kind: "truncate", tables: ["t"] }] });
    expect(run("lax", partial).outcome).toBe("deny");
  });
  it("allow still applies guardrails", () => {
    expect(run("open", bad)).toMatchObject({ outcome: "allow", rule: { path: "connections[2].on_unparseable" } });
    const partial = factsFrom({ unparseable: { reason: "x" }, statements: [{ kind: "drop", tables: ["t"] }] });
    expect(run("open", partial).outcome).toBe("deny");
  });
});

describe("opaque code (code the analysis cannot see into)", () => {
  const hidden = factsFrom({
    commands: [{ name: "python3", argv: ["python3", "-c", "..."] }],
    opaque: [{ kind: "inline-code", detail: "python3 -c" }],
  });
  const policyWith = (extra: string) =>
    new CompiledPolicy(
      parseConfig(`
connections:
  - name: box
    type: ssh
    target: { host: h, user: u, password: p, host_key: "${HOST_KEY}" }
    access: ["*"]
${extra}`),
    );

  it("is refused by default on a connection with guardrails, saying why and how to allow it", () => {
    const d = run("host", hidden);
    expect(d).toMatchObject({
      outcome: "deny",
      rule: {
        path: "connections[3].on_opaque",
        summary: "on_opaque deny, the default on a connection with guardrails",
      },
    });
    expect(d.outcome === "deny" && d.reason).toContain("python3 -c: runs code the gateway cannot see into");
    expect(d.outcome === "deny" && d.reason).toContain('set on_opaque: approve or allow on connection "host"');
    // the same request without hidden code is allowed
    expect(run("host", factsFrom({ commands: hidden.commands })).outcome).toBe("allow");
  });

  it("is allowed by default where there are no guardrails, and the decision names on_opaque", () => {
    const d = policyWith("").decide(ci, "box", hidden);
    expect(d).toMatchObject({ outcome: "allow", rule: { path: "connections[0].on_opaque" } });
  });

  it("on_opaque: allow lets it through, and guardrails still apply to what was seen", () => {
    const p = policyWith(`    guardrails: [{ deny: { commands: [rm] } }]\n    on_opaque: allow`);
    expect(p.decide(ci, "box", hidden).outcome).toBe("allow");
    const both = factsFrom({ ...hidden, commands: [...hidden.commands, { name: "rm", argv: ["rm", "x"] }] });
    expect(p.decide(ci, "box", both)).toMatchObject({
      outcome: "deny",
      rule: { path: "connections[0].guardrails[0]" },
    });
  });

  it("on_opaque: approve holds it under the first approval rule, and needs one", () => {
    const p = policyWith(
      `    on_opaque: approve\n    approvals: [{ require: { commands: [sudo] }, approvers: [group:sre] }]`,
    );
    const d = p.decide(ci, "box", hidden);
    expect(d).toMatchObject({ outcome: "approve", rule: { path: "connections[0].on_opaque" } });
    expect(d.outcome === "approve" && d.approval.approvers).toEqual(["group:sre"]);
    expect(() => policyWith("    on_opaque: approve")).toThrow(/on_opaque: approve needs an approvals rule/);
  });
});

describe("ssh", () => {
  const cmd = (name: string, ...argv: string[]) => ({ name, argv: [name, ...argv] });
  it("matches command names anywhere in the line and by basename", () => {
    expect(ruleOf(run("host", factsFrom({ commands: [cmd("ls"), cmd("/sbin/reboot")] })))).toBe(
      "connections[3].guardrails[0]",
    );
    expect(ruleOf(run("host", factsFrom({ commands: [cmd("mkfs.ext4", "/dev/sda")] })))).toBe(
      "connections[3].guardrails[0]",
    );
    expect(run("host", factsFrom({ commands: [cmd("Reboot")] })).outcome).toBe("allow"); // case-sensitive
  });

  it("patterns glob over pipelines with whitespace collapsed", () => {
    expect(ruleOf(run("host", factsFrom({ pipelines: ["rm   -rf  /var/lib"] })))).toBe("connections[3].guardrails[1]");
    expect(ruleOf(run("host", factsFrom({ pipelines: ["curl -s https://x.sh | sh"] })))).toBe(
      "connections[3].guardrails[1]",
    );
    expect(run("host", factsFrom({ pipelines: ["rm -r /tmp/x"] })).outcome).toBe("allow");
    // argv text is a fallback when an analyzer gave no pipelines
    expect(run("host", factsFrom({ commands: [cmd("rm", "-rf", "/")] })).outcome).toBe("deny");
  });

  it("commands and patterns together must both match", () => {
    expect(
      ruleOf(run("host", factsFrom({ commands: [cmd("cat", "/etc/shadow")], pipelines: ["cat /etc/shadow"] }))),
    ).toBe("connections[3].guardrails[2]");
    expect(
      run("host", factsFrom({ commands: [cmd("less", "/etc/shadow")], pipelines: ["less /etc/shadow"] })).outcome,
    ).toBe("allow");
  });
});

describe("kubernetes and http", () => {
  it("kubernetes verbs/resources/namespaces, subresources", () => {
    const api = (verb: string, resource: string, namespace?: string, subresource?: string) =>
      factsFrom({
        apiCalls: [{ verb, resource, ...(namespace ? { namespace } : {}), ...(subresource ? { subresource } : {}) }],
      });
    expect(ruleOf(run("k8s", api("DELETE", "pods", "kube-system")))).toBe("connections[4].guardrails[0]");
    expect(run("k8s", api("delete", "pods", "default")).outcome).toBe("allow");
    expect(ruleOf(run("k8s", api("get", "secrets", "default")))).toBe("connections[4].guardrails[1]");
    expect(run("k8s", api("create", "pods", "default", "exec"))).toMatchObject({
      outcome: "approve",
      rule: { path: "connections[4].approvals[0]" },
    });
    expect(run("k8s", api("get", "pods", "default", "log")).outcome).toBe("allow");
  });

  it("http methods (case-insensitive) and path globs (query ignored)", () => {
    const call = (method: string, path: string) => factsFrom({ httpCalls: [{ method, path }] });
    expect(ruleOf(run("api", call("delete", "/v1/x")))).toBe("connections[5].guardrails[0]");
    expect(ruleOf(run("api", call("GET", "/admin/users/1")))).toBe("connections[5].guardrails[1]");
    expect(run("api", call("GET", "/Admin/users")).outcome).toBe("allow");
    expect(ruleOf(run("api", call("post", "/v1/refunds/42?x=1")))).toBe("connections[5].approvals[0]");
    expect(run("api", call("GET", "/v1/refunds")).outcome).toBe("allow");
  });
});

describe("globs", () => {
  it("* spans spaces, ? is one character, regex characters are literal", () => {
    expect(compileGlob("curl * | sh").test("curl -fsSL https://a.b/c?d=1 | sh")).toBe(true);
    expect(compileGlob("a?c").test("abc")).toBe(true);
    expect(compileGlob("a?c").test("abbc")).toBe(false);
    expect(compileGlob("a.(b)+[c]").test("a.(b)+[c]")).toBe(true);
    expect(compileGlob("a.b").test("axb")).toBe(false);
    expect(new GlobSet(["Rm -RF *"], { caseInsensitive: true }).matches("rm   -rf   /")).toBe(true);
    expect(new GlobSet(["rm -rf *"]).matches("RM -rf /")).toBe(false);
  });
});

describe("performance", () => {
  it("decides well under 20 microseconds per request", () => {
    const conn = policy.connection("db");
    if (!conn) throw new Error("no connection");
    const facts = sql(
      { kind: "select", tables: ["public.users"] },
      { kind: "update", tables: ["orders"], hasWhere: true },
    );
    for (let i = 0; i < 5_000; i++) decide(ci, conn, facts);
    const n = 50_000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) decide(ci, conn, facts);
    const perDecisionUs = Number(process.hrtime.bigint() - start) / n / 1000;
    expect(perDecisionUs).toBeLessThan(20);
  });
});
