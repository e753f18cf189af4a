import { readFile } from "node:fs/promises";
import { z } from "zod";
import type { Identity } from "../identity/identity.js";
import { CompiledPolicy, type Decision } from "./decide.js";
import { ConfigError, zodToConfigError } from "./errors.js";
import { factsFrom, type RequestFacts } from "./facts.js";
import { parseYaml } from "./loader.js";
import type { GatehouseConfig } from "./schema.js";

/**
 * `gatehouse policy test` cases: an identity, a connection, request facts and the expected outcome. The file is
 * validated as strictly as the config, so a misspelt expectation cannot pass by accident.
 */

const statement = z
  .object({
    kind: z.string().min(1),
    tables: z.array(z.string()).default([]),
    hasWhere: z.boolean().optional(),
    functions: z.array(z.string().min(1)).optional(),
  })
  .strict();
const command = z.union([
  z
    .string()
    .min(1)
    .transform((name) => ({ name, argv: [name] })),
  z.object({ name: z.string().min(1), argv: z.array(z.string()).optional() }).strict(),
]);
const apiCall = z
  .object({
    verb: z.string().min(1),
    group: z.string().optional(),
    version: z.string().optional(),
    // "" for a non-resource request, which names its `path`
    resource: z.string(),
    namespace: z.string().optional(),
    name: z.string().optional(),
    subresource: z.string().optional(),
    path: z.string().optional(),
  })
  .strict();
const httpCall = z.object({ method: z.string().min(1), path: z.string().min(1) }).strict();

const request = z
  .object({
    statements: z.array(statement).optional(),
    commands: z.array(command).optional(),
    pipelines: z.array(z.string()).optional(),
    apiCalls: z.array(apiCall).optional(),
    httpCalls: z.array(httpCall).optional(),
    within: z.array(apiCall).optional(),
    opaque: z.array(z.object({ kind: z.string().min(1), detail: z.string().min(1) }).strict()).optional(),
    unparseable: z.object({ reason: z.string() }).strict().optional(),
  })
  .strict();

const identity = z
  .object({
    subject: z.string().min(1).optional(),
    groups: z.array(z.string()).optional(),
    kind: z.enum(["bot", "human"]).optional(),
    token: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if ((v.subject === undefined) === (v.token === undefined)) {
      ctx.addIssue({ code: "custom", message: "give either subject (with groups, kind) or token: NAME" });
    } else if (v.token !== undefined && (v.groups || v.kind)) {
      ctx.addIssue({ code: "custom", message: "a token identity takes its groups and kind from the config" });
    }
  });

const casesSchema = z
  .object({
    cases: z
      .array(
        z
          .object({
            name: z.string().min(1),
            identity,
            connection: z.string().min(1),
            request: request.default({}),
            expect: z.enum(["allow", "deny", "approve"]),
            rule: z.string().min(1).optional(),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

export type PolicyCase = z.output<typeof casesSchema>["cases"][number];

export interface CaseResult {
  name: string;
  pass: boolean;
  expect: PolicyCase["expect"];
  expectRule?: string;
  decision: Decision;
}

export function parseCases(text: string, source: string): PolicyCase[] {
  const raw = parseYaml(text, source);
  const result = casesSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw zodToConfigError(source, result.error);
  return result.data.cases;
}

export async function loadCases(path: string): Promise<PolicyCase[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw ConfigError.at(path, "", `cannot read cases: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseCases(text, path);
}

function caseIdentity(c: PolicyCase, i: number, config: GatehouseConfig, source: string): Identity {
  if (c.identity.token !== undefined) {
    const token = config.identity.tokens.find((t) => t.name === c.identity.token);
    if (!token) {
      const known = config.identity.tokens.map((t) => t.name).join(", ") || "none";
      throw ConfigError.at(
        source,
        `cases[${i}].identity.token`,
        `no static token named ${JSON.stringify(c.identity.token)} in the config (defined: ${known})`,
      );
    }
    return {
      subject: token.name,
      kind: token.kind,
      groups: [...token.groups],
      issuer: "gatehouse",
      tokenId: token.name,
    };
  }
  const subject = c.identity.subject as string;
  return {
    subject,
    kind: c.identity.kind ?? "bot",
    groups: c.identity.groups ?? [],
    issuer: "policy-test",
    tokenId: subject,
  };
}

/** Runs every case; throws ConfigError (naming the cases file) if a case refers to something the config lacks. */
export function runCases(config: GatehouseConfig, cases: readonly PolicyCase[], source: string): CaseResult[] {
  const policy = CompiledPolicy.for(config);
  return cases.map((c, i) => {
    const connection = policy.connection(c.connection);
    if (!connection) {
      const known = policy.connections.map((x) => x.name).join(", ") || "none";
      throw ConfigError.at(
        source,
        `cases[${i}].connection`,
        `no connection named ${JSON.stringify(c.connection)} (defined: ${known})`,
      );
    }
    const facts: RequestFacts = factsFrom({
      ...c.request,
      commands: c.request.commands?.map((cmd) => ({ name: cmd.name, argv: cmd.argv ?? [cmd.name] })),
    });
    const decision = policy.decide(caseIdentity(c, i, config, source), connection, facts);
    const pass = decision.outcome === c.expect && (c.rule === undefined || decision.rule?.path === c.rule);
    const result: CaseResult = { name: c.name, pass, expect: c.expect, decision };
    if (c.rule !== undefined) result.expectRule = c.rule;
    return result;
  });
}

function describeDecision(d: Decision): string {
  return d.rule ? `${d.outcome} by ${d.rule.path} (${d.rule.summary})` : d.outcome;
}

/** One line per case, as `policy test` prints it. */
export function formatCaseResult(r: CaseResult): string {
  if (r.pass) return `PASS ${r.name}: ${describeDecision(r.decision)}`;
  const expected = r.expectRule ? `${r.expect} by ${r.expectRule}` : r.expect;
  return `FAIL ${r.name}: expected ${expected}, got ${describeDecision(r.decision)}`;
}
