import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../core/policy/loader.js";
import { viewOrigins } from "./catalog.js";
import { MessageBuffer, ProtocolError } from "./framing.js";
import { maskRow, planMasking, type MaskerLike } from "./result-mask.js";
import { buildDataRow, parseCommandTag, parseDataRow } from "./rows.js";
import { ScramClient } from "./scram.js";
import { errorResponse, message, parseErrorFields } from "./wire.js";

describe("MessageBuffer", () => {
  it("frames typed messages split at any byte, without copying whole chunks", () => {
    const q = message("Q", Buffer.from("select 1\0"));
    const s = message("S");
    const all = Buffer.concat([q, s, q]);
    for (let cut = 1; cut < all.length; cut++) {
      const b = new MessageBuffer();
      const got: string[] = [];
      b.push(all.subarray(0, cut));
      for (let f = b.nextTyped(1024); f; f = b.nextTyped(1024)) got.push(f.raw.toString("hex"));
      b.push(all.subarray(cut));
      for (let f = b.nextTyped(1024); f; f = b.nextTyped(1024)) got.push(f.raw.toString("hex"));
      expect(got).toEqual([q, s, q].map((m) => m.toString("hex")));
      expect(b.length).toBe(0);
    }
  });

  it("refuses a length below 4 and a message over the limit before buffering it", () => {
    const bad = new MessageBuffer();
    bad.push(Buffer.from([0x51, 0, 0, 0, 3]));
    expect(() => bad.nextTyped(1024)).toThrow(ProtocolError);
    const huge = new MessageBuffer();
    huge.push(Buffer.from([0x64, 0x7f, 0xff, 0xff, 0xff]));
    expect(() => huge.nextTyped(64 * 1024 * 1024)).toThrow(/exceeds the limit/);
    const startup = new MessageBuffer();
    startup.push(Buffer.from([0, 0x20, 0, 0, 0, 3, 0, 0]));
    expect(() => startup.nextUntyped(1024 * 1024)).toThrow(/exceeds the limit/);
  });
});

describe("rows and errors", () => {
  it("round-trips DataRow values, NULLs included, and reads command tags", () => {
    const row = buildDataRow([Buffer.from("a"), null, Buffer.alloc(0)]);
    expect(parseDataRow(row.subarray(5)).map((v) => v?.toString() ?? null)).toEqual(["a", null, ""]);
    expect(parseCommandTag(Buffer.from("INSERT 0 12\0"))).toEqual({ tag: "INSERT 0 12", rows: 12 });
    expect(parseCommandTag(Buffer.from("CREATE TABLE\0"))).toEqual({ tag: "CREATE TABLE" });
    const e = errorResponse({ severity: "ERROR", code: "42501", message: "no", detail: "why" });
    expect(Object.fromEntries(parseErrorFields(e.subarray(5)))).toMatchObject({
      S: "ERROR",
      C: "42501",
      M: "no",
      D: "why",
    });
  });
});

describe("SCRAM-SHA-256", () => {
  it("matches the RFC 7677 test vector and verifies the server signature", async () => {
    const c = new ScramClient("pencil", { nonce: "rOprNGfwEbeRWgbNEkqO", user: "user" });
    expect(c.first().toString()).toBe("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    const final = await c.final(
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    );
    expect(final.toString()).toBe(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    expect(() => c.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).not.toThrow();
    expect(() => c.verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).toThrow(/mismatch/);
  });

  it("refuses a server nonce that does not extend ours", async () => {
    const c = new ScramClient("pencil", { nonce: "abc" });
    await expect(c.final("r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")).rejects.toThrow(/nonce/);
  });
});

describe("view column origins", () => {
  it("reads the top-level target list of a stored view query (joins, subqueries in FROM and in expressions)", () => {
    // pg_rewrite.ev_action of: select s.name as who, b.email as contact, (select max(id) from vt_base) as m
    //   from vt_base b join (select id, name from vt_base) s on s.id = b.id       (vt_base has oid 16964)
    const text = readFileSync(new URL("./testdata/view-ev-action.txt", import.meta.url), "utf8");
    expect([...viewOrigins(text)]).toEqual([
      [1, { tableOid: 16964, attnum: 3 }],
      [2, { tableOid: 16964, attnum: 2 }],
      [3, { tableOid: 0, attnum: 0 }],
    ]);
  });
});

describe("masking plan", () => {
  const masker: MaskerLike = {
    enabled: true,
    hasColumnRules: true,
    hasDetectors: true,
    columnMatches: (c) => c.column === "email" || c.column === "age",
    maskText: (s) => (s.includes("@") ? { text: s.replace(/\S+@\S+/, "[email]"), hits: 1 } : undefined),
  };
  const col = (name: string, typeOid: number, format = 0) => ({ name, tableOid: 1, attnum: 1, typeOid, format });

  it("masks text as text, other types and binary as NULL, and scans only textual text-format columns", () => {
    const columns = [col("e", 25), col("age", 23), col("bin", 25, 1), col("note", 25), col("n", 23)];
    const src = (column: string) => [{ schema: "public", table: "users", column }];
    const plan = planMasking(masker, columns, [src("email"), src("age"), src("email"), src("note"), src("n")], "***");
    expect(plan?.maskedColumns).toEqual(["e", "age", "bin"]);
    const row = buildDataRow(["a@b.c", "31", "\x00\x01", "mail me: x@y.z", "7"].map((v) => Buffer.from(v, "latin1")));
    const out = maskRow(masker, plan!, row.subarray(5));
    expect(parseDataRow(out!.raw.subarray(5)).map((v) => v?.toString() ?? null)).toEqual([
      "***",
      null,
      null,
      "mail me: [email]",
      "7",
    ]);
  });

  it("has no plan (rows pass untouched) when no column matches and no detector applies", () => {
    const plain = { ...masker, hasDetectors: false };
    expect(planMasking(plain, [col("n", 23)], [[{ schema: "s", table: "t", column: "n" }]], "***")).toBeUndefined();
  });
});

describe("postgres listener TLS settings", () => {
  it("defaults to TLS with a generated certificate, required for remote clients", () => {
    expect(parseConfig("connections: []", { source: "t.yaml" }).postgres.tls).toEqual({
      enabled: true,
      require: "remote",
    });
  });

  it("rejects a cert without a key, and require without TLS", () => {
    const cert = "-----BEGIN CERTIFICATE-----\\nx\\n-----END CERTIFICATE-----";
    expect(() => parseConfig(`postgres: { tls: { cert: "${cert}" } }`, { source: "t.yaml" })).toThrow(/go together/);
    expect(() => parseConfig("postgres: { tls: { enabled: false } }", { source: "t.yaml" })).toThrow(
      /needs TLS enabled/,
    );
    expect(
      parseConfig("postgres: { tls: { enabled: false, require: never } }", { source: "t.yaml" }).postgres.tls,
    ).toEqual({
      enabled: false,
      require: "never",
    });
    expect(() => parseConfig("postgres: { tls: { bogus: 1 } }", { source: "t.yaml" })).toThrow();
  });
});
