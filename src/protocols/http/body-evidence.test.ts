import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BodyEvidence } from "./body-evidence.js";

describe("BodyEvidence", () => {
  it("hashes the whole body and keeps its head, however it was cut and whatever the limit", () => {
    const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(""));
    const sha256 = createHash("sha256").update(body).digest("hex");
    for (const limit of [0, 1, 100, 2999, 3000, 5000]) {
      for (const cut of [1, 7, 100, 1500, 3000]) {
        const e = new BodyEvidence(limit);
        for (let i = 0; i < body.length; i += cut) e.add(body.subarray(i, i + cut));
        const s = e.summary();
        expect(s).toMatchObject({ bytes: 3000, sha256 });
        if (limit > 0) expect(s.body).toBe(body.subarray(0, limit).toString());
        if (limit > 0) expect(s.truncated).toBe(limit < 3000 ? true : undefined);
      }
    }
  });
});
