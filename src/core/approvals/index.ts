/** Approval requests, N-of-M decisions, hold/resume waiters, access grants and notifiers. */
export * from "./types.js";
export { LocalApprovalBus, type ApprovalBus } from "./bus.js";
export { exactRequestKey, newApprovalId } from "./keys.js";
export type { ApprovalEvent, ApprovalEventType, ApprovalNotifier } from "./notifier.js";
export { applyVote, approversOf, isRequester, VoteRefusedError, type VoteRefusal } from "./rules.js";
export {
  ApprovalNotFoundError,
  ApprovalService,
  type ApprovalServiceDeps,
  type ApprovalSettings,
  type NewApproval,
} from "./service.js";
export { ApprovalWorkflow } from "./workflow.js";
export { AccessRequestError, requestAccess } from "./access.js";
export { SlackNotifier, WebhookNotifier, signBody, type DeliveryOptions } from "./webhooks.js";
export { createApprovals } from "./setup.js";
