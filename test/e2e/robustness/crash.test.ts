/**
 * kill -9 of the gateway under pgbench load (issue 5, item 3). After a restart on the same data directory:
 * every statement the target logged has its audit record (evidence before effect survives a crash), the audit
 * chain verifies, and the sessions the crash cut off are visible as such. Run for both `audit.durability`
 * settings: `os` gives up only power-loss durability, so a process kill must lose nothing there either.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import type { VerifyReport } from "../../../src/core/evidence/verify.js";
import { statementLog } from "../postgres/harness.js";
import { loggedStatement, readAudit, runCli, startGatewayProcess, writeConfig } from "./process.js";

describe.each(["fsync", "os"] as const)("audit.durability %s", (durability) => {
  const RUN = `crash-${durability}-${randomUUID().slice(0, 8)}`;
  const CLIENTS = 4;
  let dir: string;
  let data: string;
  let firstRun: AuditRecord[];
  let afterRestart: AuditRecord[];
  let verify: { code: number; stdout: string; stderr: string };
  let pgbenchOut = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "gatehouse-crash-"));
    data = join(dir, "data");
    const { path, token } = await writeConfig(dir, data, `audit: { durability: ${durability} }\n`);
    // each statement carries the run's marker and a random number, so the log and the audit can be matched by text
    const script = join(dir, "bench.sql");
    writeFileSync(script, `\\set r random(1, 1000000000)\nSELECT /* ${RUN} */ :r AS v;\n`);

    const gw = await startGatewayProcess(path);
    const bench = new Promise<void>((resolve) => {
      execFile(
        "pgbench",
        ["-n", "-c", String(CLIENTS), "-j", "2", "-T", "20", "-f", script],
        {
          env: {
            ...process.env,
            PGHOST: "127.0.0.1",
            PGPORT: String(gw.port),
            PGUSER: "ci-bot",
            PGPASSWORD: token,
            PGDATABASE: "app-db",
            PGSSLMODE: "disable",
          },
        },
        (_err, stdout, stderr) => {
          pgbenchOut = `${stdout}${stderr}`;
          resolve();
        },
      );
    });
    // kill only once statements are flowing through every client
    const deadline = Date.now() + 20_000;
    while ((await statementLog(RUN)).length < 500 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    process.kill(gw.pid, "SIGKILL");
    expect(await gw.exited).toBe("SIGKILL");
    await bench;
    const t1 = Date.now();
    // the target logs a statement when it starts it; give its log writer a moment after the last client is gone
    await new Promise((r) => setTimeout(r, 500));
    firstRun = await readAudit(data);

    // restart on the same data directory, then stop it cleanly
    const again = await startGatewayProcess(path);
    process.kill(again.pid, "SIGTERM");
    expect(await again.exited).toBe(0);
    afterRestart = await readAudit(data);
    verify = await runCli("audit", "verify", "--data", data, "--json");
    process.stderr.write(
      `crash (${durability}): pgbench ended ${t1 - t0} ms after the kill; restart+verify ${Date.now() - t1} ms\n`,
    );
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe(`gateway killed with SIGKILL under pgbench load (audit.durability: ${durability})`, () => {
    it("had load when it died (pgbench clients lost their connections)", () => {
      expect(pgbenchOut).toMatch(/server closed the connection|connection to server|terminat|aborted/i);
    });

    it("has an audit record for every statement in the target's statement log", async () => {
      const audited = new Map<string, number>();
      for (const r of firstRun) {
        if (r.type !== "request" || r.decision !== "allow") continue;
        const text = String((r.data as { text?: unknown } | undefined)?.text ?? "").trim();
        audited.set(text, (audited.get(text) ?? 0) + 1);
      }
      const logged = (await statementLog(RUN)).map(loggedStatement).filter((t): t is string => t !== undefined);
      expect(logged.length).toBeGreaterThanOrEqual(500);
      const missing: string[] = [];
      for (const text of logged) {
        const n = audited.get(text.trim()) ?? 0;
        if (n === 0) missing.push(text);
        else audited.set(text.trim(), n - 1);
      }
      expect(missing, `${missing.length} of ${logged.length} logged statements have no audit record`).toEqual([]);
    });

    it("passes audit verify, with the interrupted sessions sealed by the restart", () => {
      expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
      const report = JSON.parse(verify.stdout) as VerifyReport;
      expect(report.ok).toBe(true);
      expect(report.audit_error).toBeUndefined();
      // every pgbench client's session was open at the kill; the restart sealed each over what was stored
      expect(report.sessions.unsealed).toBe(0);
      expect(report.sessions.sealed).toBeGreaterThanOrEqual(CLIENTS);
      const starts = afterRestart.filter((r) => r.type === "gateway.start");
      expect(starts).toHaveLength(2);
    });

    // Gateway.start ends what a crash cut off (src/core/session/interrupted.ts): a session.end marked interrupted
    // for each session.start without an end, and a seal over the recording's stored events.
    it("marks the sessions the crash interrupted as such after the restart", () => {
      const ended = new Set(afterRestart.filter((r) => r.type === "session.end").map((r) => r.session_id));
      const cut = firstRun.filter((r) => r.type === "session.start" && !ended.has(r.session_id));
      const endsAfter = afterRestart.filter(
        (r) => r.type === "session.end" && /interrupt/i.test(JSON.stringify(r.data ?? {})),
      );
      expect(cut.length + endsAfter.length).toBeGreaterThanOrEqual(CLIENTS);
      expect(cut).toEqual([]);
    });
  });
});
