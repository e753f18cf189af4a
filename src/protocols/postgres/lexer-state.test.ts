import { describe, expect, it } from "vitest";
import { dependsOnState, readParameterStatus, TargetLexerState } from "./lexer-state.js";
import { message } from "./wire.js";

const BACKSLASH = "SELECT '\\''; DROP TABLE t; --'";

describe("TargetLexerState", () => {
  it("trusts everything with the defaults the gateway's parser assumes", () => {
    const s = new TargetLexerState();
    expect(s.doubt(BACKSLASH)).toBeUndefined();
    expect(s.doubt("SELECT 'café'")).toBeUndefined();
  });

  it("standard_conforming_strings off: text with a backslash is doubted, text without one is not", () => {
    const s = new TargetLexerState();
    s.observe("standard_conforming_strings", "off");
    expect(s.doubt(BACKSLASH)).toBe(
      "standard_conforming_strings is off on the target, and this text contains a backslash",
    );
    expect(s.doubt("SELECT 'it''s'")).toBeUndefined();
    s.observe("standard_conforming_strings", "on");
    expect(s.doubt(BACKSLASH)).toBeUndefined();
  });

  it("a client encoding other than UTF-8: only plain ASCII is trusted; SQL_ASCII counts as UTF-8 on a UTF-8 server", () => {
    const s = new TargetLexerState();
    s.observe("client_encoding", "SJIS");
    expect(s.doubt("SELECT 'ｱ'")).toBe("the target reads text as SJIS, not UTF-8, and this text is not plain ASCII");
    expect(s.doubt(BACKSLASH)).toBeUndefined();
    s.observe("client_encoding", "SQL_ASCII");
    expect(s.doubt("SELECT 'é'")).toBeUndefined();
    s.observe("server_encoding", "LATIN1");
    expect(s.doubt("SELECT 'é'")).toMatch(/reads text as SQL_ASCII/);
    s.observe("client_encoding", "unicode");
    expect(s.doubt("SELECT 'é'")).toBeUndefined();
  });

  it("ignores settings that do not change how text is read", () => {
    const s = new TargetLexerState();
    s.observe("DateStyle", "SQL, DMY");
    s.observe("TimeZone", "Asia/Tokyo");
    expect(s.doubt(BACKSLASH)).toBeUndefined();
  });
});

describe("dependsOnState", () => {
  it("is true exactly for text with a backslash or a non-ASCII character", () => {
    expect(dependsOnState("SELECT abalance FROM pgbench_accounts WHERE aid = 1")).toBe(false);
    expect(dependsOnState("SELECT E'\\n'")).toBe(true);
    expect(dependsOnState("SELECT 'é'")).toBe(true);
    expect(dependsOnState("SELECT '😀'")).toBe(true);
    expect(dependsOnState("SELECT '\u007f'")).toBe(false);
  });
});

describe("readParameterStatus", () => {
  it("reads name and value, and refuses a truncated body", () => {
    const body = message("S", Buffer.from("standard_conforming_strings\0off\0")).subarray(5);
    expect(readParameterStatus(body)).toEqual({ name: "standard_conforming_strings", value: "off" });
    expect(readParameterStatus(Buffer.from("standard_conforming_strings\0off"))).toBeUndefined();
    expect(readParameterStatus(Buffer.from("standard_conforming_strings"))).toBeUndefined();
  });
});
