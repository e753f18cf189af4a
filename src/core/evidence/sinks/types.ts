import type { AuditRecord } from "../audit-event.js";

/** A destination outside the gateway for committed audit records (SIEM, log shipper, file). */
export interface AuditSink {
  /** Stable, human-readable; used in metrics and warnings (e.g. `http:https://siem.example`). */
  readonly name: string;
  /** Delivers records in seq order. Resolves once delivered; throws to ask for a retry (see PermanentSinkError). */
  deliver(records: AuditRecord[]): Promise<void>;
  close(): Promise<void>;
  /**
   * The highest seq this sink already holds from an earlier run, when the sink can know it (the file sink
   * reads its last line). The forwarder then backfills from the store what was committed while it was down.
   */
  lastDeliveredSeq?(): Promise<number | undefined>;
}

/** A delivery failure that retrying cannot fix (e.g. HTTP 400/401/403): the batch is given up with an error. */
export class PermanentSinkError extends Error {
  override name = "PermanentSinkError";
}

/** A delivery failure worth retrying; `retryAfterMs` is the receiver's hint (HTTP Retry-After). */
export class RetryableSinkError extends Error {
  override name = "RetryableSinkError";
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Satisfied by a pino logger and by `console`. */
export interface SinkLogger {
  warn(msg: string): void;
  error(msg: string): void;
}
