import type { Command } from "commander";
import type { ApprovalRecord } from "../core/approvals/types.js";
import { callApi, withApiOptions, type ApiOptions } from "./api-client.js";
import { CliError } from "./cli-error.js";

type Shown = ApprovalRecord & { approvals: number };

export function registerApprovalCommands(program: Command): void {
  const approvals = program.command("approvals").description("list and decide approval requests (as yourself)");

  withApiOptions(
    approvals
      .command("ls")
      .description("list approval requests (pending by default)")
      .option("--status <status>", "pending, granted, denied, expired, cancelled, consumed or all", "pending")
      .option("--json", "machine-readable output"),
  ).action(async (opts: ApiOptions & { status: string; json?: boolean }) => {
    const res = await callApi<{ approvals: Shown[] }>(
      opts,
      "GET",
      `/api/approvals?status=${encodeURIComponent(opts.status)}`,
    );
    if (opts.json) return write(JSON.stringify(res.approvals, null, 2));
    if (res.approvals.length === 0)
      return write(`no ${opts.status === "all" ? "" : `${opts.status} `}approval requests`);
    for (const a of res.approvals) write(line(a));
  });

  for (const vote of ["approve", "deny"] as const) {
    withApiOptions(
      approvals
        .command(`${vote} <id>`)
        .description(vote === "approve" ? "approve a request (never your own)" : "deny a request; ends it")
        .option("--reason <text>", "why (recorded; required by some rules)")
        .option("--json", "machine-readable output"),
    ).action(async (id: string, opts: ApiOptions & { reason?: string; json?: boolean }) => {
      const res = await callApi<{ approval: Shown }>(
        opts,
        "POST",
        `/api/approvals/${encodeURIComponent(id)}/${vote}`,
        opts.reason !== undefined ? { reason: opts.reason } : {},
      );
      const a = res.approval;
      if (opts.json) return write(JSON.stringify(a, null, 2));
      if (a.status === "pending") write(`${a.id}: approval recorded, ${a.approvals} of ${a.min_approvals} so far`);
      else write(`${a.id}: ${a.status}${a.valid_until ? ` (valid until ${a.valid_until})` : ""}`);
    });
  }

  const access = program.command("access").description("time-window access to a connection");
  withApiOptions(
    access
      .command("request <connection>")
      .description("ask approvers for access to a connection for a while")
      .requiredOption("--for <duration>", "how long, e.g. 30m or 2h (capped by the connection's access_requests.max)")
      .requiredOption("--reason <text>", "why you need it (shown to approvers, recorded)")
      .option("--json", "machine-readable output"),
  ).action(async (connection: string, opts: ApiOptions & { for: string; reason: string; json?: boolean }) => {
    if (!opts.reason.trim()) throw new CliError("--reason must not be empty", 2);
    const res = await callApi<{ approval: Shown; commands: { approve: string }; links?: { view: string } }>(
      opts,
      "POST",
      "/api/access-requests",
      { connection, duration: opts.for, reason: opts.reason },
    );
    if (opts.json) return write(JSON.stringify(res.approval, null, 2));
    write(
      `${res.approval.id}: access to ${connection} for ${opts.for} requested; approvers: ` +
        `${res.approval.approvers.join(", ")} (${res.commands.approve}${res.links ? ` or ${res.links.view}` : ""})`,
    );
  });
}

function line(a: Shown): string {
  const what =
    a.kind === "access"
      ? `access for ${Math.round((a.duration_ms ?? 0) / 60_000)}m: ${a.reason ?? ""}`
      : (a.request?.text ?? "");
  const shortened = what.length > 80 ? `${what.slice(0, 79)}…` : what;
  return [
    a.id,
    a.status,
    a.kind,
    a.connection,
    a.requester.subject,
    `${a.approvals}/${a.min_approvals}`,
    a.status === "pending" ? `expires ${a.expires_at}` : (a.decided_at ?? ""),
    JSON.stringify(shortened.replace(/\s+/g, " ")),
  ].join("  ");
}

function write(text: string): void {
  process.stdout.write(text + "\n");
}
