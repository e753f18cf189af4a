import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Masker } from "../masker.js";

const m = Masker.from({ detectors: ["private_key"] });
const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });

function body(pem: string): string {
  return pem.split("\n").slice(1, 3).join("\n");
}

describe("private_key", () => {
  const cases: [string, string][] = [
    ["RSA", rsa.privateKey.export({ type: "pkcs1", format: "pem" }) as string],
    ["EC", ec.privateKey.export({ type: "sec1", format: "pem" }) as string],
    ["plain", rsa.privateKey.export({ type: "pkcs8", format: "pem" }) as string],
    [
      "ENCRYPTED",
      rsa.privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" }) as string,
    ],
    [
      "OPENSSH",
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijAAAAJgAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    ],
  ];
  for (const [name, pem] of cases) {
    it(`masks a ${name} key block and keeps its markers`, () => {
      const r = m.maskText(`key:\n${pem}done`);
      const [begin] = pem.split("\n");
      expect(r?.text.startsWith(`key:\n${begin}\n********\n-----END `)).toBe(true);
      expect(r?.text.endsWith("PRIVATE KEY-----\ndone")).toBe(true);
      expect(r?.text).not.toContain(body(pem));
      expect(r?.hits).toEqual([{ detector: "private_key", count: 1 }]);
    });
  }

  it("masks a block with CRLF line endings (terminal output)", () => {
    const pem = (rsa.privateKey.export({ type: "pkcs1", format: "pem" }) as string).replace(/\n/g, "\r\n");
    const r = m.maskText(`$ cat id_rsa\r\n${pem}$ `);
    expect(r?.text).toBe(
      "$ cat id_rsa\r\n-----BEGIN RSA PRIVATE KEY-----\r\n********\r\n-----END RSA PRIVATE KEY-----\r\n$ ",
    );
  });

  it("masks from BEGIN to the end of a truncated value", () => {
    const pem = rsa.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const cut = pem.slice(0, 200);
    const r = m.maskText(`row: ${cut}`);
    expect(r?.text).toBe("row: -----BEGIN PRIVATE KEY-----\n********");
    expect(r?.text).not.toContain(cut.slice(40, 80));
  });

  it("masks a JSON-escaped block on one line", () => {
    const pem = (rsa.privateKey.export({ type: "pkcs8", format: "pem" }) as string).replace(/\n/g, "\\n");
    expect(m.maskText(`{"key":"${pem}"}`)?.text).toBe(
      `{"key":"-----BEGIN PRIVATE KEY-----\\n********\\n-----END PRIVATE KEY-----\\n"}`,
    );
  });

  it("masks two blocks and leaves public keys and certificates alone", () => {
    const pem = rsa.privateKey.export({ type: "pkcs1", format: "pem" }) as string;
    expect(m.maskText(pem + pem)?.hits).toEqual([{ detector: "private_key", count: 2 }]);
    const pub = rsa.publicKey.export({ type: "spki", format: "pem" }) as string;
    expect(m.maskText(pub)).toBeUndefined();
    expect(m.maskText("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")).toBeUndefined();
  });
});
