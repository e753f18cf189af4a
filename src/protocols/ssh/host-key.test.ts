import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import { generateEd25519KeyPair } from "./host-key.js";

describe("generateEd25519KeyPair", () => {
  // ssh2's own generator writes an unreadable private key about once in 400 calls: 3,000 pairs hit that
  // almost surely (all readable by chance: ~0.03%), so this fails if the pair is not checked and made again
  it("only returns pairs whose private key ssh2 can read back", () => {
    let unreadable = 0;
    for (let i = 0; i < 3000; i++) {
      const pair = generateEd25519KeyPair();
      if (ssh2.utils.parseKey(pair.private) instanceof Error) unreadable++;
    }
    expect(unreadable).toBe(0);
  });
});
