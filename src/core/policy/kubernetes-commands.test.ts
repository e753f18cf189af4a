import { describe, expect, it } from "vitest";
import { factsFrom } from "./facts.js";
import { compileMatcher } from "./matcher.js";

const exec = { verb: "exec", resource: "pods", subresource: "exec", namespace: "prod", name: "api-1" };
const rm = { name: "rm", argv: ["rm", "-rf", "/data"] };

describe("kubernetes rules on commands", () => {
  it("a command rule with a place applies to the exec's own command and to lines typed within it", () => {
    const m = compileMatcher({ commands: ["rm"], namespaces: ["prod"] }, "kubernetes");
    expect(m.match(factsFrom({ apiCalls: [exec], commands: [rm] }))).toBe("command rm in exec pods/exec api-1 in prod");
    expect(m.match(factsFrom({ commands: [rm], within: [exec] }))).toBe("command rm in exec pods/exec api-1 in prod");
    expect(m.match(factsFrom({ commands: [rm], within: [{ ...exec, namespace: "dev" }] }))).toBeUndefined();
    expect(m.match(factsFrom({ commands: [{ name: "ls", argv: ["ls"] }], within: [exec] }))).toBeUndefined();
  });

  it("a rule on API calls alone judges the exec once, not every line typed in it", () => {
    const m = compileMatcher({ verbs: ["exec"] }, "kubernetes");
    expect(m.match(factsFrom({ apiCalls: [exec] }))).toBe("exec pods/exec api-1 in prod");
    expect(m.match(factsFrom({ commands: [rm], within: [exec] }))).toBeUndefined();
  });

  it("a command rule without a place applies wherever the command runs", () => {
    const m = compileMatcher({ commands: ["rm"] }, "kubernetes");
    expect(m.match(factsFrom({ commands: [rm], within: [exec] }))).toBe("command rm");
  });
});
