import type { AuditRecord } from "../audit-event.js";
import { canonicalJson } from "../canonical.js";
import { PermanentSinkError, RetryableSinkError, type AuditSink } from "./types.js";

export interface HttpSinkOptions {
  url: string;
  headers?: Record<string, string>;
  /** Per request (default 10 s). */
  timeoutMs?: number;
}

/**
 * POSTs each batch as a JSON array of canonical records. 2xx = delivered. 408, 429, 5xx and network errors are
 * retried by the forwarder (with backoff, honouring Retry-After); any other status is a permanent refusal
 * (bad URL, bad credentials) that retrying would not fix.
 */
export class HttpSink implements AuditSink {
  readonly name: string;
  readonly #url: URL;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  constructor(options: HttpSinkOptions) {
    this.#url = new URL(options.url);
    if (this.#url.protocol !== "http:" && this.#url.protocol !== "https:") {
      throw new Error(`http sink: url must be http:// or https://, got ${options.url}`);
    }
    // The name goes into logs and metrics: never the path/query, which may carry a token.
    this.name = `http:${this.#url.origin}`;
    this.#headers = { "content-type": "application/json", ...options.headers };
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  async deliver(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    const body = `[${records.map((r) => canonicalJson(r)).join(",")}]`;
    let res: Response;
    try {
      res = await fetch(this.#url, {
        method: "POST",
        headers: this.#headers,
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw new RetryableSinkError(`POST ${this.#url.origin}: ${describe(err)}`, undefined, { cause: err });
    }
    await res.body?.cancel().catch(() => {}); // free the connection; the answer's body is not used
    if (res.ok) return;
    const what = `POST ${this.#url.origin} answered ${res.status}`;
    if (res.status === 408 || res.status === 429 || res.status >= 500) {
      throw new RetryableSinkError(what, retryAfterMs(res.headers.get("retry-after")));
    }
    throw new PermanentSinkError(what);
  }

  async close(): Promise<void> {}
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}

/** Retry-After is either delta-seconds or an HTTP date. */
function retryAfterMs(value: string | null): number | undefined {
  if (!value) return undefined;
  const secs = Number(value);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
