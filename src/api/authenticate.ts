import type { FastifyReply, FastifyRequest } from "fastify";
import type { AuditLog } from "../core/evidence/audit-log.js";
import { AuthError, parseAuthorizationHeader, type Identity, type IdentityVerifier } from "../core/identity/index.js";

export interface AuthDeps {
  verifier: IdentityVerifier;
  audit: AuditLog;
}

/**
 * The caller's own bearer identity, or undefined after answering 401 and recording `auth.failed` (never the
 * token). Every API route that acts as someone goes through here.
 */
export async function authenticate(
  deps: AuthDeps,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<Identity | undefined> {
  try {
    return await deps.verifier.verify(parseAuthorizationHeader(request.headers.authorization));
  } catch (err) {
    if (!(err instanceof AuthError)) throw err;
    await deps.audit
      .append({
        type: "auth.failed",
        data: { protocol: "api", client: request.ip, code: err.code, message: err.message },
      })
      .catch(() => undefined);
    await reply.code(401).header("www-authenticate", "Bearer").send({ error: err.message, code: err.code });
    return undefined;
  }
}
