import { describe, expect, it } from "vitest";
import { ConfigError } from "./errors.js";
import { parseConfig } from "./loader.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEf16fTzb86kebmy7H7HYW6Dn514ROZOFj23EBi6cVui";

function parse(keys: string) {
  return parseConfig(`identity:\n  ssh_keys:\n${keys}`, { source: "gatehouse.yaml" });
}

function errorOf(keys: string): string {
  try {
    parse(keys);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("identity.ssh_keys", () => {
  it("defaults to none, and takes name, key, groups, kind", () => {
    expect(parseConfig("data: ./d\n", { baseDir: "/x" }).identity.ssh_keys).toEqual([]);
    const config = parse(`    - { name: deploy-bot, key: "${KEY} bot@ci", groups: [ci] }\n`);
    expect(config.identity.ssh_keys).toEqual([
      { name: "deploy-bot", key: `${KEY} bot@ci`, groups: ["ci"], kind: "bot" },
    ]);
  });

  it("refuses a malformed key, unknown fields, duplicate names and the same key twice", () => {
    expect(errorOf(`    - { name: a, key: "not a key" }\n`)).toContain("expected one public key line");
    expect(errorOf(`    - { name: a, key: "-----BEGIN OPENSSH PRIVATE KEY-----" }\n`)).toContain(
      "expected one public key line",
    );
    expect(errorOf(`    - { name: a, key: "${KEY}", role: admin }\n`)).toMatch(/role/);
    expect(
      errorOf(`    - { name: a, key: "${KEY}" }\n    - { name: a, key: "${KEY.replace("Ef", "Eg")}" }\n`),
    ).toContain('duplicate key name "a"');
    expect(errorOf(`    - { name: a, key: "${KEY} one" }\n    - { name: b, key: "${KEY} two" }\n`)).toContain(
      "duplicate key",
    );
    expect(errorOf(`    - { name: a, key: "${KEY}", groups: ["group:ci"] }\n`)).toContain("without the");
  });
});
