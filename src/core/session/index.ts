export {
  Gate,
  GatedSession,
  SessionRefusedError,
  type Admission,
  type ApprovalHandler,
  type GateDeps,
  type GateRequest,
  type HoldNotice,
  type OpenSessionRequest,
  type RefusalKind,
} from "./gate.js";
export { toAuditIdentity } from "./audit-identity.js";
export { newSessionId } from "./session-id.js";
