/**
 * Evidence could not be made durable (store unwritable, disk full, writer gone). Callers must refuse the
 * request this evidence was for: no effect without evidence (DESIGN.md section 1).
 */
export class EvidenceUnavailableError extends Error {
  readonly code = "EVIDENCE_UNAVAILABLE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EvidenceUnavailableError";
  }
}

export function describeCause(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
