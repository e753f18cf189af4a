/** An error's message for a client or a log line (its text only: no stack, no class name). */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
