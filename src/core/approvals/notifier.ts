import type { ApprovalRecord } from "./types.js";

export type ApprovalEventType =
  "approval.requested" | "approval.granted" | "approval.denied" | "approval.expired" | "approval.cancelled";

/** What approvers are told: the record, and where to act on it when the gateway has a public URL. */
export interface ApprovalEvent {
  type: ApprovalEventType;
  approval: ApprovalRecord;
  /** `gatehouse approvals approve ID` and friends: works wherever the CLI reaches the API. */
  commands: { approve: string; deny: string };
  links?: { view: string; approve: string; deny: string };
}

/** Delivers events somewhere (webhook, chat). Never throws and never blocks the decision: delivery is retried. */
export interface ApprovalNotifier {
  readonly name: string;
  send(event: ApprovalEvent): void;
  /** Waits for deliveries in flight (tests, shutdown). */
  flush(): Promise<void>;
}
