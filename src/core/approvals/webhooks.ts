import { createHmac, randomUUID } from "node:crypto";
import type { ApprovalEvent, ApprovalNotifier } from "./notifier.js";

export interface DeliveryOptions {
  /** Attempts per event, the first included (default 6). */
  attempts?: number;
  /** Delay before the first retry; doubles each time (default 1 s), capped at `maxDelayMs` (default 60 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** The signature header's value: `sha256=` + hex HMAC-SHA256 of the exact body bytes under the shared secret. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/**
 * POSTs JSON to a URL, retrying failures (network errors, timeouts, 5xx, 408, 429) with exponential backoff.
 * Deliveries run in the background: a slow receiver never holds up a decision.
 */
abstract class HttpNotifier implements ApprovalNotifier {
  readonly #inFlight = new Set<Promise<void>>();
  readonly #o: Required<Omit<DeliveryOptions, "log">> & Pick<DeliveryOptions, "log">;

  constructor(
    readonly name: string,
    protected readonly url: string,
    options: DeliveryOptions = {},
  ) {
    this.#o = {
      attempts: options.attempts ?? 6,
      baseDelayMs: options.baseDelayMs ?? 1000,
      maxDelayMs: options.maxDelayMs ?? 60_000,
      timeoutMs: options.timeoutMs ?? 10_000,
      fetch: options.fetch ?? globalThis.fetch,
      ...(options.log ? { log: options.log } : {}),
    };
  }

  protected abstract render(event: ApprovalEvent): { body: string; headers: Record<string, string> } | undefined;

  send(event: ApprovalEvent): void {
    const rendered = this.render(event);
    if (!rendered) return;
    const p = this.#deliver(rendered.body, rendered.headers, event).finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  async flush(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  async #deliver(body: string, headers: Record<string, string>, event: ApprovalEvent): Promise<void> {
    const { attempts, baseDelayMs, maxDelayMs, timeoutMs } = this.#o;
    let last = "";
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const res = await this.#o.fetch(this.url, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        last = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 408 && res.status !== 429) break; // the receiver refuses it for good
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      if (attempt < attempts) {
        const delay = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
    this.#o.log?.("approval notification not delivered", {
      notifier: this.name,
      event: event.type,
      approval_id: event.approval.id,
      error: last,
    });
  }
}

/**
 * Generic webhook: the event as JSON, signed so the receiver can tell it came from this gateway:
 * `X-Gatehouse-Signature: sha256=HMAC(secret, body)`. Every attempt of one event carries the same
 * `X-Gatehouse-Delivery` id, so a receiver can drop duplicates of a retried delivery.
 */
export class WebhookNotifier extends HttpNotifier {
  constructor(
    url: string,
    private readonly secret: string,
    options?: DeliveryOptions,
  ) {
    super(`webhook ${new URL(url).host}`, url, options);
  }

  protected render(event: ApprovalEvent): { body: string; headers: Record<string, string> } {
    const body = JSON.stringify({
      type: event.type,
      approval: event.approval,
      commands: event.commands,
      ...(event.links ? { links: event.links } : {}),
    });
    return {
      body,
      headers: {
        "x-gatehouse-event": event.type,
        "x-gatehouse-delivery": randomUUID(),
        "x-gatehouse-signature": signBody(this.secret, body),
      },
    };
  }
}

/** Slack-compatible incoming webhook: a readable message with approve/deny buttons linking to the gateway. */
export class SlackNotifier extends HttpNotifier {
  constructor(url: string, options?: DeliveryOptions) {
    super(`slack ${new URL(url).host}`, url, options);
  }

  protected render(event: ApprovalEvent): { body: string; headers: Record<string, string> } {
    const a = event.approval;
    const what =
      a.kind === "access"
        ? `access to *${a.connection}* for ${Math.round((a.duration_ms ?? 0) / 60_000)} min: ${a.reason ?? ""}`
        : `on *${a.connection}*: \`${truncate(a.request?.text ?? "", 500).replace(/`/g, "'")}\``;
    const headline: Record<ApprovalEvent["type"], string> = {
      "approval.requested": `:hourglass: *${a.requester.subject}* asks for approval ${what}`,
      "approval.granted": `:white_check_mark: Approval ${a.id} granted`,
      "approval.denied": `:no_entry: Approval ${a.id} denied`,
      "approval.expired": `:alarm_clock: Approval ${a.id} expired without a decision`,
      "approval.cancelled": `:heavy_multiplication_x: Approval ${a.id} cancelled (${a.end_reason ?? ""})`,
    };
    const text = headline[event.type];
    const details =
      event.type === "approval.requested"
        ? `Request \`${a.id}\` · rule ${a.rule.path} · approvers ${a.approvers.join(", ")} · ` +
          `${a.min_approvals} needed · expires ${a.expires_at}\nCLI: \`${event.commands.approve}\``
        : `Requested by ${a.requester.subject} on ${a.connection}`;
    const blocks: unknown[] = [
      { type: "section", text: { type: "mrkdwn", text } },
      { type: "context", elements: [{ type: "mrkdwn", text: details }] },
    ];
    if (event.type === "approval.requested" && event.links) {
      blocks.push({
        type: "actions",
        elements: [
          { type: "button", text: { type: "plain_text", text: "Approve" }, style: "primary", url: event.links.approve },
          { type: "button", text: { type: "plain_text", text: "Deny" }, style: "danger", url: event.links.deny },
        ],
      });
    }
    return { body: JSON.stringify({ text, blocks }), headers: {} };
  }
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n)}…`;
}
