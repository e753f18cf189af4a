/**
 * How a waiter learns that an approval request changed. In one process a map of listeners is enough; several
 * replicas will implement the same interface over the shared store's LISTEN/NOTIFY. Listeners re-read the
 * record from the store: the message only says "look again", so a lost or duplicated message is harmless as
 * long as the waiter also looks at its deadline.
 */
export interface ApprovalBus {
  publish(approvalId: string): void;
  /** Returns the unsubscribe function. */
  subscribe(approvalId: string, listener: () => void): () => void;
}

export class LocalApprovalBus implements ApprovalBus {
  readonly #listeners = new Map<string, Set<() => void>>();

  publish(approvalId: string): void {
    for (const l of [...(this.#listeners.get(approvalId) ?? [])]) l();
  }

  subscribe(approvalId: string, listener: () => void): () => void {
    let set = this.#listeners.get(approvalId);
    if (!set) this.#listeners.set(approvalId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(approvalId);
    };
  }
}
