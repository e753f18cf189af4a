export {
  Gate,
  GatedSession,
  SessionRefusedError,
  type AccessGrant,
  type AccessGrants,
  type Admission,
  type ApprovalHandler,
  type GateDeps,
  type GateRequest,
  type HoldNotice,
  type HoldOutcome,
  type OpenSessionRequest,
  type AdapterRefusal,
  type RequestEvidence,
  type RefusalKind,
} from "./gate.js";
export { toAuditIdentity } from "./audit-identity.js";
export { newSessionId } from "./session-id.js";
