import { describe, expect, it } from "vitest";
import { parseConfig } from "../policy/loader.js";

const conn = (extra = "") => `
connections:
  - name: app-db
    type: postgres
    target: { host: 127.0.0.1, user: app }
    access: [group:ci]
${extra}`;
const parse = (yaml: string) => parseConfig(yaml, { source: "t.yaml" });

describe("approvals configuration", () => {
  it("has defaults and parses durations", () => {
    expect(parse(conn()).approvals).toEqual({ hold_zero_window: 600_000, pending: 3_600_000, notify: [] });
    const c = parse(`approvals: { url: https://gw.example, hold_zero_window: 30m, pending: 2h }\n${conn()}`);
    expect(c.approvals).toMatchObject({ url: "https://gw.example", hold_zero_window: 1_800_000, pending: 7_200_000 });
  });

  it("rejects notifiers with none or both kinds, short secrets and unknown keys", () => {
    expect(() => parse(`approvals: { notify: [{}] }\n${conn()}`)).toThrow(/exactly one of webhook, slack/);
    expect(() =>
      parse(`approvals: { notify: [{ webhook: { url: "https://h.example", secret: short } }] }\n${conn()}`),
    ).toThrow(/at least 16 characters/);
    expect(() =>
      parse(`approvals: { notify: [{ slack: { url: "https://h.example", channel: x } }] }\n${conn()}`),
    ).toThrow(/channel/);
    expect(() => parse(`approvals: { hold_zero_window: 0 }\n${conn()}`)).toThrow(/longer than 0/);
  });

  it("validates access_requests", () => {
    const c = parse(conn("    access_requests: { approvers: [group:dba] }"));
    expect(c.connections[0]?.access_requests).toEqual({
      approvers: ["group:dba"],
      min_approvals: 1,
      max: 8 * 3_600_000,
      reason_required: false,
    });
    expect(() => parse(conn("    access_requests: { approvers: [subject:alice], min_approvals: 2 }"))).toThrow(
      /2 approvals required but approvers name only 1/,
    );
    expect(() => parse(conn("    access_requests: { approvers: [group:dba], max: 60d }"))).toThrow(/maximum 30d/);
  });
});
