export type { AuditEventInput, AuditEventType, AuditIdentity, AuditRecord } from "./audit-event.js";
export { AuditLog, type AuditLogOptions, type AuditLogStats } from "./audit-log.js";
export { canonicalHash, canonicalJson, ZERO_HASH } from "./canonical.js";
export { EvidenceUnavailableError } from "./errors.js";
export type { Checkpoint, RecordingEvent, SessionHeader, SessionRecord, SessionSeal } from "./records.js";
export { readRecording, SessionRecorder, SessionRecording, type SessionRecorderOptions } from "./recorder.js";
export { keyIdOf, publicKeyFromPem, type EvidenceSigner, type SigningKeyRecord } from "./signing.js";
export { verifyEvidence, type AuditProblem, type VerifyOptions, type VerifyReport } from "./verify.js";
