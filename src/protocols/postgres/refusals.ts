import type { RefusalAnswers } from "../../core/adapter/index.js";
import { SQLSTATE } from "./wire.js";

/**
 * The SQLSTATE each refusal is answered with: a refused session gets a FATAL at login, a refused request an
 * ErrorResponse followed by ReadyForQuery (the session stays usable).
 */
export const POSTGRES_REFUSALS: RefusalAnswers<string> = {
  session: {
    unknown_connection: SQLSTATE.unknownDatabase,
    wrong_protocol: SQLSTATE.unknownDatabase,
    no_access: SQLSTATE.insufficientPrivilege,
    evidence_unavailable: SQLSTATE.systemError,
  },
  request: {
    denied: SQLSTATE.insufficientPrivilege,
    approval_denied: SQLSTATE.insufficientPrivilege,
    approval_expired: SQLSTATE.insufficientPrivilege,
    approval_cancelled: SQLSTATE.insufficientPrivilege,
    approval_pending: SQLSTATE.insufficientPrivilege,
    evidence_unavailable: SQLSTATE.insufficientPrivilege,
  },
};
