/** `gatehouse token ...` in a real child process: argv, stdin, stdout, exit codes. */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { describe, expect, it } from "vitest";

const runner = fileURLToPath(new URL("./run-cli.ts", import.meta.url));

function gatehouse(args: string[], input = "") {
  const r = spawnSync(process.execPath, ["--import", "tsx", runner, ...args], { input, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

describe("gatehouse token", () => {
  it("new --json prints a gth_ token whose sha256 is the one printed", () => {
    const r = gatehouse(["token", "new", "--name", "ci-bot", "--groups", "ci, deploy", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { token: string; sha256: string; name: string; groups: string[]; kind: string };
    expect(out.token).toMatch(/^gth_[A-Za-z0-9_-]{43}$/);
    expect(out.sha256).toBe(sha256(out.token));
    expect(out).toMatchObject({ name: "ci-bot", groups: ["ci", "deploy"], kind: "bot" });
  });

  it("new prints a config snippet that the gateway accepts for exactly that token", () => {
    const r = gatehouse(["token", "new", "--name", "deploy-bot", "--groups", "deploy", "--kind", "human"]);
    expect(r.code, r.stderr).toBe(0);
    const token = /^\s+(gth_\S+)$/m.exec(r.stdout)?.[1];
    expect(token).toBeDefined();
    const snippet = r.stdout.slice(r.stdout.indexOf("identity:"));
    const parsed = YAML.parse(snippet) as { identity: { tokens: Array<{ sha256: string }> } };
    expect(parsed.identity.tokens[0]?.sha256).toBe(sha256(token!));

    const dir = mkdtempSync(join(tmpdir(), "gatehouse-token-"));
    writeFileSync(join(dir, "gatehouse.yaml"), `data: ./data\n${snippet}`);
    const ok = gatehouse(["token", "verify", "--config", join(dir, "gatehouse.yaml")], `${token}\n`);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ subject: "deploy-bot", kind: "human", groups: ["deploy"] });

    const bad = gatehouse(["token", "verify", "--config", join(dir, "gatehouse.yaml")], "gth_not-the-token\n");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("unknown_token");
    expect(bad.stderr).not.toContain("gth_not-the-token");
  });

  it("hash reads stdin without its trailing newline", () => {
    const r = gatehouse(["token", "hash"], "abc\n");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(sha256("abc"));
    expect(gatehouse(["token", "hash"], "").code).toBe(1);
  });

  it("mint issues a token that verify accepts with the same data dir, and refuses when tampered", () => {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-mint-"));
    writeFileSync(join(dir, "gatehouse.yaml"), "data: ./data\n");
    const minted = gatehouse([
      "token",
      "mint",
      "--data",
      join(dir, "data"),
      "--subject",
      "alice",
      "--groups",
      "dba",
      "--kind",
      "human",
      "--ttl",
      "10m",
      "--json",
    ]);
    expect(minted.code, minted.stderr).toBe(0);
    const { token, expires_at } = JSON.parse(minted.stdout) as { token: string; expires_at: string };
    expect(Date.parse(expires_at) - Date.now()).toBeLessThanOrEqual(10 * 60_000);

    const ok = gatehouse(["token", "verify", "--config", join(dir, "gatehouse.yaml")], token);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      subject: "alice",
      kind: "human",
      groups: ["dba"],
      issuer: "gatehouse",
    });

    const [h, p, s] = token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: "root" })).toString("base64url")}.${s}`;
    const refused = gatehouse(["token", "verify", "--config", join(dir, "gatehouse.yaml")], tampered);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("bad_signature");
  });

  it("refuses a lifetime over 24h and bad names with a one-line error", () => {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-mint-"));
    const long = gatehouse(["token", "mint", "--data", dir, "--subject", "a", "--ttl", "25h"]);
    expect(long.code).toBe(1);
    expect(long.stderr.trim().split("\n")).toHaveLength(1);
    expect(gatehouse(["token", "new", "--name", "bad name"]).code).toBe(1);
  });
});
