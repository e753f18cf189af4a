import { describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/core/evidence/audit-event.js";
import { canonicalize, canonicalJson, sha256Hex } from "../../src/core/evidence/canonical.js";
import {
  auditRecordHash,
  encodedAuditRecordText,
  encodedRecordingEventText,
  recordingEventHash,
} from "../../src/core/evidence/chain.js";
import type { RecordingEvent } from "../../src/core/evidence/records.js";

const H = "ab".repeat(32);

describe("fixed-shape encoders equal canonicalJson of the same record", () => {
  const full: Omit<AuditRecord, "hash"> = {
    seq: 12,
    time: "2026-01-01T00:00:00.000Z",
    type: "request",
    identity: { subject: "ci-bot", kind: "bot", groups: ["ci", "é"], issuer: "gatehouse", token_id: "t" },
    connection: "app-db",
    session_id: "s-1",
    decision: "allow",
    rule: 'connections[0].guardrails[1] "x"',
    data: { text: "select 1 -- \u2028", params: [1, null, "\ud800"], nested: { z: 1, a: [] } },
    prev_hash: H,
  };
  const minimal: Omit<AuditRecord, "hash"> = { seq: 1, time: full.time, type: "gateway.start", prev_hash: H };

  it("audit records, with every field and with none of the optional ones", () => {
    for (const r of [full, minimal, { ...full, data: {} }]) {
      const { identity, data, ...rest } = r;
      const text = encodedAuditRecordText(rest, canonicalize(identity), canonicalize(data));
      expect(text).toBe(canonicalJson(r));
      expect(sha256Hex(encodedAuditRecordText(rest, canonicalize(identity), canonicalize(data)))).toBe(
        auditRecordHash(r),
      );
    }
  });

  it("recording events, with and without data", () => {
    const base = { session_id: "s-1", seq: 3, t: 1500, kind: "request" as const, prev_hash: H };
    for (const data of [undefined, { text: "select 1", b: [1, 2] }, null, "x", 0]) {
      const ev: Omit<RecordingEvent, "hash"> = data === undefined ? base : { ...base, data };
      const text = encodedRecordingEventText(base, canonicalize(data));
      expect(text).toBe(canonicalJson(ev));
      expect(sha256Hex(text)).toBe(recordingEventHash(ev));
    }
  });
});
