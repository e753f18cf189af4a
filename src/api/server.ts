import Fastify, { type FastifyInstance } from "fastify";
import type { AgentStatus } from "../agent/registry.js";
import type { ApprovalWorkflow } from "../core/approvals/index.js";
import type { AuditLog } from "../core/evidence/audit-log.js";
import type { IdentityVerifier } from "../core/identity/index.js";
import type { CompiledPolicy } from "../core/policy/decide.js";
import type { HostPort } from "../core/policy/schema.js";
import { toAuditIdentity } from "../core/session/audit-identity.js";
import type { Store } from "../core/store/types.js";
import { registerApprovalRoutes } from "./approvals.js";
import { authenticate } from "./authenticate.js";

export interface ApiDeps {
  address: HostPort;
  verifier: IdentityVerifier;
  audit: AuditLog;
  store: Store;
  /** The approval workflow and the policy it reads access-request rules from; without them no approval routes. */
  approvals?: { workflow: ApprovalWorkflow; policy: CompiledPolicy };
  /** The configured agents' live state (`gatehouse agents ls`). */
  agents?: () => AgentStatus[];
}

export interface ApiServer {
  /** "host:port" actually bound (the port is real even when 0 was asked for). */
  address: string;
  close(): Promise<void>;
}

/**
 * The admin API: health, `whoami` (how a bot checks which identity its token maps to), approvals and access
 * requests. Sessions, kill and replay endpoints arrive with their features.
 */
export async function startApi(deps: ApiDeps): Promise<ApiServer> {
  const app: FastifyInstance = Fastify({ logger: false, bodyLimit: 1024 * 1024 });

  // 503 while evidence cannot be written: every request is being refused (fail closed), so a load balancer should
  // send clients elsewhere; after an fsync error it stays 503 until a restart, which a liveness probe can do
  app.get("/healthz", async (_request, reply) => {
    const head = deps.audit.head;
    const failure = deps.audit.failure;
    const audit = { seq: head.seq, hash: head.hash };
    if (failure === undefined) return { ok: true, audit };
    return reply.code(503).send({ ok: false, audit: { ...audit, error: `evidence unavailable: ${failure}` } });
  });

  app.get("/api/whoami", async (request, reply) => {
    const identity = await authenticate(deps, request, reply);
    if (!identity) return reply;
    return { identity: toAuditIdentity(identity), expires_at: identity.expiresAt?.toISOString() };
  });

  app.get("/api/agents", async (request, reply) => {
    if (!(await authenticate(deps, request, reply))) return reply;
    return { agents: deps.agents?.() ?? [] };
  });

  if (deps.approvals) {
    registerApprovalRoutes(app, {
      verifier: deps.verifier,
      audit: deps.audit,
      approvals: deps.approvals.workflow,
      policy: deps.approvals.policy,
    });
  }

  await app.listen({ host: deps.address.host, port: deps.address.port });
  const bound = app.server.address();
  const port = typeof bound === "object" && bound ? bound.port : deps.address.port;
  return { address: `${deps.address.host}:${port}`, close: () => app.close() };
}
