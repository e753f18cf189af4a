import type { FastifyInstance } from "fastify";
import {
  AccessRequestError,
  ApprovalNotFoundError,
  requestAccess,
  VoteRefusedError,
  type ApprovalRecord,
  type ApprovalStatus,
  type ApprovalWorkflow,
} from "../core/approvals/index.js";
import type { AuditLog } from "../core/evidence/audit-log.js";
import type { IdentityVerifier } from "../core/identity/index.js";
import { authenticate } from "./authenticate.js";
import type { CompiledPolicy } from "../core/policy/decide.js";
import { parseDuration } from "../core/policy/duration.js";

export interface ApprovalRoutesDeps {
  verifier: IdentityVerifier;
  audit: AuditLog;
  approvals: ApprovalWorkflow;
  policy: CompiledPolicy;
}

const STATUSES: readonly ApprovalStatus[] = ["pending", "granted", "denied", "expired", "cancelled", "consumed"];
const VOTE_STATUS = {
  not_pending: 409,
  already_voted: 409,
  self_approval: 403,
  not_an_approver: 403,
  reason_required: 400,
} as const;

/**
 * Where approvers act. Every call carries the caller's own bearer identity: approvals are decided by who
 * the verifier says the caller is, never by anything in the body.
 */
export function registerApprovalRoutes(app: FastifyInstance, deps: ApprovalRoutesDeps): void {
  const service = deps.approvals.service;

  app.get("/api/approvals", async (request, reply) => {
    if (!(await authenticate(deps, request, reply))) return reply;
    const query = request.query as { status?: string; limit?: string };
    const status = query.status ?? "pending";
    if (status !== "all" && !STATUSES.includes(status as ApprovalStatus)) {
      return reply.code(400).send({ error: `status must be all or one of ${STATUSES.join(", ")}` });
    }
    const limit = Math.min(1000, Math.max(1, Number(query.limit ?? 100) || 100));
    const list = await service.list({
      ...(status === "all" ? {} : { statuses: [status as ApprovalStatus] }),
      limit,
    });
    return { approvals: list.map(view) };
  });

  app.get<{ Params: { id: string } }>("/api/approvals/:id", async (request, reply) => {
    if (!(await authenticate(deps, request, reply))) return reply;
    const record = await service.get(request.params.id);
    if (!record) return reply.code(404).send({ error: `no approval request ${JSON.stringify(request.params.id)}` });
    return { approval: view(record) };
  });

  for (const vote of ["approve", "deny"] as const) {
    app.post<{ Params: { id: string } }>(`/api/approvals/:id/${vote}`, async (request, reply) => {
      const approver = await authenticate(deps, request, reply);
      if (!approver) return reply;
      const body = (request.body ?? {}) as { reason?: unknown };
      if (body.reason !== undefined && typeof body.reason !== "string") {
        return reply.code(400).send({ error: "reason must be a string" });
      }
      try {
        const record = await service.vote(request.params.id, approver, vote, body.reason);
        return { approval: view(record) };
      } catch (err) {
        if (err instanceof VoteRefusedError) {
          return reply.code(VOTE_STATUS[err.code]).send({ error: err.message, code: err.code });
        }
        if (err instanceof ApprovalNotFoundError) return reply.code(404).send({ error: err.message });
        throw err;
      }
    });
  }

  app.post("/api/access-requests", async (request, reply) => {
    const requester = await authenticate(deps, request, reply);
    if (!requester) return reply;
    const body = (request.body ?? {}) as { connection?: unknown; duration?: unknown; reason?: unknown };
    if (typeof body.connection !== "string" || typeof body.reason !== "string") {
      return reply.code(400).send({ error: 'body needs "connection", "duration" (e.g. "30m") and "reason"' });
    }
    const ms =
      typeof body.duration === "string" || typeof body.duration === "number" ? parseDuration(body.duration) : undefined;
    if (typeof ms !== "number") {
      return reply.code(400).send({ error: `invalid duration: ${ms?.error ?? 'expected e.g. "30m"'}` });
    }
    try {
      const record = await requestAccess(service, deps.policy, requester, {
        connection: body.connection,
        durationMs: ms,
        reason: body.reason,
      });
      return reply.code(201).send({ approval: view(record), ...service.instructions(record.id) });
    } catch (err) {
      if (err instanceof AccessRequestError) {
        return reply.code(err.code === "unknown_connection" ? 404 : 400).send({ error: err.message, code: err.code });
      }
      throw err;
    }
  });

  // The page behind notification links: shows the request and decides it with the approver's own token.
  app.get<{ Params: { id: string } }>("/approvals/:id", async (request, reply) => {
    const id = request.params.id;
    if (!/^a_[0-9a-z]+$/.test(id)) return reply.code(404).send("not found");
    return reply.type("text/html; charset=utf-8").header("content-security-policy", PAGE_CSP).send(page(id));
  });
}

/** What the API shows of a record: everything, plus how many approvals it still needs. */
function view(r: ApprovalRecord): ApprovalRecord & { approvals: number } {
  return { ...r, approvals: r.votes.filter((v) => v.vote === "approve").length };
}

const PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'";

function page(id: string): string {
  return `<!doctype html><meta charset="utf-8"><title>Gatehouse approval ${id}</title>
<style>body{font:15px system-ui;max-width:50rem;margin:2rem auto}pre{background:#f4f4f4;padding:1rem;overflow:auto}</style>
<h1>Approval request <code>${id}</code></h1>
<p><label>Your token <input id="t" type="password" size="50" autocomplete="off"></label>
<button id="load">Show</button></p><pre id="r"></pre>
<p><label>Reason <input id="why" size="50"></label>
<button id="approve">Approve</button> <button id="deny">Deny</button></p><p id="out"></p>
<script>
const id=${JSON.stringify(id)},$=(x)=>document.getElementById(x);
const call=async(m,p,b)=>{const r=await fetch(p,{method:m,headers:{authorization:"Bearer "+$("t").value,"content-type":"application/json"},body:b&&JSON.stringify(b)});return [r.status,await r.json()];};
$("load").onclick=async()=>{const [s,j]=await call("GET","/api/approvals/"+id);$("r").textContent=JSON.stringify(s===200?j.approval:j,null,2);};
for(const v of ["approve","deny"])$(v).onclick=async()=>{const [s,j]=await call("POST","/api/approvals/"+id+"/"+v,{reason:$("why").value});$("out").textContent=s===200?"Done: "+j.approval.status:"Refused: "+j.error;};
const a=new URLSearchParams(location.search).get("action");if(a)$(a)?.focus();
</script>`;
}
