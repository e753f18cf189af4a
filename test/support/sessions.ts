/** Waiting for sessions' evidence, instead of sleeping "long enough". No vitest imports. */
import type { Store } from "../../src/core/store/types.js";

/**
 * Resolves once every session in the store is sealed (the gateway ends a session on its own turn after the client
 * left), or after `capMs` when some stay open on purpose (a test's long-lived client): the caller reads then.
 */
export async function untilSessionsSealed(store: Store, capMs = 3000): Promise<void> {
  const until = Date.now() + capMs;
  while (Date.now() < until) {
    const sessions = await store.listSessions({});
    if (sessions.every((s) => s.seal !== undefined)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
}
