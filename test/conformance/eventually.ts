/**
 * Whether `check` comes true within `ms`. A target's own witness (a statement log written by a separate process)
 * may lag the client's answer slightly; a request that never reached it is reported false after the wait.
 */
export async function eventually(check: () => Promise<boolean> | boolean, ms = 800): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
