import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { startHarness, statementLog, type Harness } from "./harness.js";

const GUARDRAILS = `guardrails:
  - deny: { statements: [drop, truncate] }
  - deny: { statements: [delete, update], without_where: true }`;

/** Each evasion runs against its own table so "allowed" really executes it. */
function evasions(marker: string, t: string) {
  return [
    { name: "case and comment tricks", sql: `/* ${marker} */ dRoP/**/TABLE ${t}` },
    { name: "multi-statement string", sql: `select 1 /* ${marker} */; drop table ${t}` },
    { name: "statement after a -- comment line", sql: `-- ${marker} harmless\ndrop table ${t}` },
    {
      name: "delete without where inside a CTE",
      sql: `with d as (delete from ${t} returning *) select count(*) /* ${marker} */ from d`,
    },
    { name: "PREPARE of a delete without where", sql: `prepare p_${t} as delete from ${t} /* ${marker} */` },
    { name: "truncate", sql: `truncate ${t} /* ${marker} */` },
  ];
}

async function fresh(h: Harness, t: string): Promise<void> {
  const r = await h.psql(
    `set client_min_messages = warning; drop table if exists ${t}; create table ${t} (id int); insert into ${t} values (1), (2)`,
    { database: "admin-db" }, // the same target user, without guardrails, sets the stage
  );
  expect(r.stderr).toBe("");
}

const cli = fileURLToPath(new URL("../../identity/run-cli.ts", import.meta.url));

describe("postgres gateway: guardrails and evidence", () => {
  it("blocks the evasion list with 42501 (simple and extended protocol), the target never sees them, and the session stays usable", async () => {
    const h = await startHarness({ appDb: GUARDRAILS });
    const marker = `m${randomUUID().replaceAll("-", "")}`;
    const t = `ev_${marker.slice(1, 9)}`;
    let dir = "";
    let sessionId = "";
    let blockedSeq = 0;
    try {
      await fresh(h, t);
      const c = await h.client();
      for (const e of evasions(marker, t)) {
        const err = await c.query(e.sql).catch((x) => x);
        expect(err?.code, e.name).toBe("42501");
        expect(err.message, e.name).toMatch(/^gatehouse: blocked by connections\[0\]\.guardrails\[[01]\] \(deny /);
        expect((await c.query(`select 1 as ok /* ${marker} alive */`)).rows, e.name).toEqual([{ ok: 1 }]);
      }
      // extended protocol: the Parse is refused, the rest skipped to Sync, the session goes on
      const ext = await c.query({ name: "evil", text: `drop table ${t} /* ${marker} */`, values: [] }).catch((x) => x);
      expect(ext.code).toBe("42501");
      const extParams = await c.query(`delete from ${t} where id > $1 /* ${marker} */`, [0]);
      expect(extParams.rowCount).toBe(2); // has a WHERE: allowed
      const ok = await c.query(`select count(*)::int as n from ${t} /* ${marker} */`);
      expect(ok.rows).toEqual([{ n: 0 }]);
      // psql too
      const psql = await h.psql(`DROP TABLE ${t} /* ${marker} psql */`);
      expect(psql.stderr).toMatch(
        /ERROR: {2}gatehouse: blocked by connections\[0\]\.guardrails\[0\] \(deny statements drop, truncate\)/,
      );

      // The target's log shows none of the blocked statements ...
      const logged = (await statementLog(marker)).filter((l) => / LOG: {2}(statement|execute [^:]*):/.test(l));
      for (const l of logged) expect(l).not.toMatch(/drop table|dRoP|truncate|delete from \S+ \/\*|prepare/i);
      // ... and every statement it does show from our sessions has a request audit event with the right identity
      const audit = await h.gateway.store.readAudit({ fromSeq: 1, limit: 100000 });
      const requests = audit.filter((a: AuditRecord) => a.type === "request");
      expect(logged.length).toBeGreaterThanOrEqual(8);
      for (const line of logged) {
        const text = line.replace(/^.* LOG: {2}(statement|execute [^:]*): /, "");
        const match = requests.find((r) => (r.data as { text?: string }).text?.includes(text.trim()));
        expect(match, line).toBeDefined();
        expect(match?.identity?.subject).toBe("ci-bot");
        expect(match?.connection).toBe("app-db");
      }
      const blocked = audit.filter((a) => a.type === "request.blocked" && JSON.stringify(a.data).includes(marker));
      expect(blocked.length).toBe(evasions(marker, t).length + 2);
      sessionId = String(blocked[0]?.session_id);
      blockedSeq = Number(blocked[0]?.seq);
      dir = h.dir;
    } finally {
      await h.stop({ keepDir: true });
    }
    const verify = spawnSync(process.execPath, ["--import", "tsx", cli, "audit", "verify", "--data", dir], {
      encoding: "utf8",
    });
    expect(verify.status, verify.stdout + verify.stderr).toBe(0);
    // the session replays as a query/result timeline
    const replay = spawnSync(process.execPath, ["--import", "tsx", cli, "replay", sessionId, "--data", dir], {
      encoding: "utf8",
    });
    expect(replay.status, replay.stderr).toBe(0);
    expect(replay.stdout).toContain("dRoP/**/TABLE");
    expect(replay.stdout).toMatch(/result +SELECT 1/);
    expect(replay.stdout).toMatch(/connections\[0\]\.guardrails\[0\]/);
    // an insider rewrites a blocked statement's record as allowed in the evidence log: verify fails and names it
    const segment = join(dir, "evidence", "w1", "00000001.seg");
    const lines = readFileSync(segment, "utf8").split("\n");
    const at = lines.findIndex((l) => l.startsWith("a ") && l.includes(`"seq":${blockedSeq},`));
    expect(lines[at]).toContain('"decision":"deny"');
    lines[at] = lines[at]!.replace('"decision":"deny"', '"decision":"allow"');
    writeFileSync(segment, lines.join("\n"));
    const tampered = spawnSync(process.execPath, ["--import", "tsx", cli, "audit", "verify", "--data", dir], {
      encoding: "utf8",
    });
    expect(tampered.status).toBe(1);
    expect(tampered.stdout + tampered.stderr).toContain(`seq ${blockedSeq}`);
    rmSync(dir, { recursive: true, force: true });
  });

  it("allows the same statements when the rule is removed", async () => {
    const h = await startHarness();
    const marker = `m${randomUUID().replaceAll("-", "")}`;
    const t = `ev_${marker.slice(1, 9)}`;
    try {
      const c = await h.client();
      for (const e of evasions(marker, t)) {
        await fresh(h, t);
        const r = await c.query(e.sql).catch((x) => x);
        expect(r instanceof Error ? r.message : "ok", e.name).toBe("ok");
      }
      const logged = await statementLog(marker);
      expect(logged.some((l) => /dRoP\/\*\*\/TABLE/.test(l))).toBe(true);
    } finally {
      await h.stop();
    }
  });
});
