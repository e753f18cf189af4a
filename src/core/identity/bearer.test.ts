import { describe, expect, it } from "vitest";
import { parseAuthorizationHeader } from "./bearer.js";
import { AuthError } from "./errors.js";

describe("parseAuthorizationHeader", () => {
  it("extracts the token, scheme case-insensitive", () => {
    expect(parseAuthorizationHeader("Bearer abc.def")).toBe("abc.def");
    expect(parseAuthorizationHeader("bearer   gth_x ")).toBe("gth_x");
  });

  it("refuses anything else as malformed", () => {
    for (const h of [undefined, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearer a b", "Token abc"]) {
      expect(() => parseAuthorizationHeader(h)).toThrow(AuthError);
    }
  });
});
