import type { AuditLog } from "../evidence/audit-log.js";
import type { ApprovalsWorkflowConfig } from "../policy/schema.js";
import type { ApprovalStore } from "./types.js";
import { ApprovalService } from "./service.js";
import { SlackNotifier, WebhookNotifier, type DeliveryOptions } from "./webhooks.js";
import { ApprovalWorkflow } from "./workflow.js";

/** The workflow as the gateway configures it from the validated `approvals:` section; call `service.start()`. */
export function createApprovals(
  config: ApprovalsWorkflowConfig,
  deps: { store: ApprovalStore; audit: AuditLog; log?: DeliveryOptions["log"]; delivery?: DeliveryOptions },
): ApprovalWorkflow {
  const delivery: DeliveryOptions = { ...(deps.log ? { log: deps.log } : {}), ...deps.delivery };
  const notifiers = config.notify.map((n) =>
    n.webhook
      ? new WebhookNotifier(n.webhook.url, n.webhook.secret, delivery)
      : new SlackNotifier(n.slack?.url ?? "", delivery),
  );
  const service = new ApprovalService({
    store: deps.store,
    audit: deps.audit,
    notifiers,
    settings: {
      ...(config.url !== undefined ? { publicUrl: config.url } : {}),
      retryWindowMs: config.hold_zero_window,
      pendingMs: config.pending,
    },
    ...(deps.log ? { log: deps.log } : {}),
  });
  return new ApprovalWorkflow(service);
}
