import type { RecordingEvent, SessionRecord } from "./records.js";

/**
 * Renders a session recording for people and players. Protocol-neutral: it knows the event kinds the
 * recorder stores (request, decision, result, bind, input, output, resize, notice...), not the protocols.
 */

type Data = Record<string, unknown>;

function asData(e: RecordingEvent): Data {
  return e.data !== null && typeof e.data === "object" && !Array.isArray(e.data) ? (e.data as Data) : {};
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Terminal bytes of an input/output event: stored as a string, or as {data} / {text}. */
function terminalText(e: RecordingEvent): string | undefined {
  if (typeof e.data === "string") return e.data;
  const d = asData(e);
  return str(d["data"]) ?? str(d["text"]);
}

function seconds(ms: number): string {
  return `+${(ms / 1000).toFixed(3)}s`;
}

function oneLine(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function header(session: SessionRecord): string[] {
  const who = session.identity
    ? `${session.identity.subject} (${session.identity.kind}; groups ${session.identity.groups.join(", ") || "none"})`
    : "unknown identity";
  const end = session.seal
    ? `ended ${session.seal.ended_at} (${session.seal.reason}), ${session.seal.count} events, sealed`
    : "not sealed (still running, or the gateway stopped without closing it)";
  return [
    `session ${session.session_id}  connection ${session.connection} (${session.protocol})`,
    `  identity ${who}`,
    `  started ${session.started_at}; ${end}`,
  ];
}

function table(columns: string[], rows: (string | null)[][], indent: string): string[] {
  const cells = [columns, ...rows.map((r) => r.map((v) => (v === null ? "NULL" : oneLine(v, 40))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    indent +
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join(" | ")
      .trimEnd();
  return [line(cells[0] ?? []), indent + widths.map((w) => "-".repeat(w)).join("-+-"), ...cells.slice(1).map(line)];
}

function isData(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function decisionLine(at: string, d: Record<string, unknown>): string {
  const rule = str(d["rule"]);
  const reason = str(d["reason"]);
  return `${at} decision  ${String(d["outcome"] ?? "?")}${rule ? ` by ${rule}` : ""}${reason ? `: ${reason}` : ""}`;
}

function describeEvent(e: RecordingEvent): string[] {
  const d = asData(e);
  const at = seconds(e.t).padEnd(10);
  switch (e.kind) {
    case "request": {
      const { decision, ...request } = d;
      const line = `${at} request   ${oneLine(str(d["text"]) ?? JSON.stringify(request))}`;
      // the gate records the decision inside the request event; older recordings have a separate event
      return isData(decision) ? [line, decisionLine(at, decision)] : [line];
    }
    case "decision":
      return [decisionLine(at, d)];
    case "bind": {
      const params = Array.isArray(d["params"]) ? (d["params"] as unknown[]).map(String) : [];
      return [
        `${at} bind      ${oneLine(str(d["text"]) ?? "")}${params.length ? `  params: ${params.join(", ")}` : ""}`,
      ];
    }
    case "result": {
      const error = d["error"] as { code?: string; message?: string } | undefined;
      if (error) return [`${at} error     ${error.code ?? ""} ${oneLine(error.message ?? "")}`.trimEnd()];
      const masked = Array.isArray(d["masked_columns"]) ? (d["masked_columns"] as string[]) : [];
      const hits =
        typeof d["mask_hits"] === "number" && d["mask_hits"] > 0 ? `, ${d["mask_hits"]} values masked by content` : "";
      const lines = [
        `${at} result    ${str(d["tag"]) ?? ""} — ${String(d["rows"] ?? 0)} rows in ${String(d["ms"] ?? "?")} ms${
          masked.length ? `; masked columns: ${masked.join(", ")}` : ""
        }${hits}`,
      ];
      const columns = Array.isArray(d["columns"]) ? (d["columns"] as string[]) : [];
      const sample = Array.isArray(d["sample"]) ? (d["sample"] as (string | null)[][]) : [];
      if (columns.length && sample.length) {
        lines.push(...table(columns, sample, " ".repeat(21)));
        const rows = typeof d["rows"] === "number" ? d["rows"] : sample.length;
        if (rows > sample.length) lines.push(`${" ".repeat(21)}(first ${sample.length} of ${rows} rows recorded)`);
      }
      return lines;
    }
    case "input":
    case "output":
      return [`${at} ${e.kind.padEnd(9)} ${JSON.stringify(terminalText(e) ?? "")}`];
    case "response":
    case "request_body": {
      // an HTTP-family exchange: status, size and what was masked, then the recorded (masked) body's first line
      const what = e.kind === "response" ? "response " : "body     ";
      const head = [
        d["status"] !== undefined ? String(d["status"]) : undefined,
        str(d["content_type"]),
        typeof d["bytes"] === "number" ? `${d["bytes"]} bytes` : undefined,
        typeof d["masked"] === "number" ? `${d["masked"]} values masked` : undefined,
        str(d["incomplete"]) ?? str(d["error"]),
      ].filter((x) => x !== undefined);
      const body = str(d["body"]);
      return [`${at} ${what} ${head.join(", ")}`, ...(body ? [`${" ".repeat(21)}${oneLine(body).slice(0, 200)}`] : [])];
    }
    default:
      return [`${at} ${e.kind.padEnd(9)} ${oneLine(JSON.stringify(e.data ?? null))}`];
  }
}

/** A query/result (or command) timeline for people. */
export async function renderText(session: SessionRecord, events: AsyncIterable<RecordingEvent>): Promise<string> {
  const lines = header(session);
  lines.push("");
  for await (const e of events) lines.push(...describeEvent(e));
  return `${lines.join("\n")}\n`;
}

/** One JSON document: the session header, its seal and every event as stored (hashes included). */
export async function renderJson(session: SessionRecord, events: AsyncIterable<RecordingEvent>): Promise<string> {
  const all: RecordingEvent[] = [];
  for await (const e of events) all.push(e);
  return `${JSON.stringify({ session, events: all }, null, 2)}\n`;
}

/**
 * asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a header line, then `[seconds, code, data]`
 * per terminal event: "o" output, "i" input, "r" resize as "COLSxROWS". Non-terminal events are left out.
 */
export async function renderAsciicast(session: SessionRecord, events: AsyncIterable<RecordingEvent>): Promise<string> {
  const out: string[] = [];
  let size: { cols: number; rows: number } | undefined;
  for await (const e of events) {
    const t = Number((e.t / 1000).toFixed(6));
    if (e.kind === "output" || e.kind === "input") {
      const text = terminalText(e);
      if (text !== undefined) out.push(JSON.stringify([t, e.kind === "output" ? "o" : "i", text]));
    } else if (e.kind === "resize") {
      const d = asData(e);
      const cols = Number(d["cols"] ?? d["width"]);
      const rows = Number(d["rows"] ?? d["height"]);
      if (cols > 0 && rows > 0) {
        size ??= { cols, rows };
        out.push(JSON.stringify([t, "r", `${cols}x${rows}`]));
      }
    }
  }
  const head = {
    version: 2,
    width: size?.cols ?? 80,
    height: size?.rows ?? 24,
    timestamp: Math.floor(Date.parse(session.started_at) / 1000),
    title: `${session.connection} ${session.session_id}`,
  };
  return `${[JSON.stringify(head), ...out].join("\n")}\n`;
}
