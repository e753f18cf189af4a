import { describe, expect, it } from "vitest";
import { parseConfig } from "../../core/policy/loader.js";
import { normalizeRequestPath } from "./request-path.js";
import { Router } from "./router.js";

const config = parseConfig(
  `connections:
  - { name: api, type: http, target: { url: "http://127.0.0.1:1" }, access: [group:ci] }
  - { name: billing, type: http, host: billing.gw.example, target: { url: "http://127.0.0.1:2" }, access: [group:ci] }
  - { name: db, type: postgres, target: { host: 127.0.0.1, user: u }, access: [group:ci] }
`,
  { source: "test.yaml" },
);

describe("Router", () => {
  const router = new Router(config.connections);

  it("takes the connection from the first path segment and strips it", () => {
    expect(router.route("/api/v1/users?x=1", "gw:18080")).toMatchObject({ connection: "api", path: "/v1/users?x=1" });
    expect(router.route("/api", undefined)).toMatchObject({ connection: "api", path: "/" });
    expect(router.route("/api?x=1", undefined)).toMatchObject({ connection: "api", path: "/?x=1" });
  });

  it("routes by host name, path untouched, and leaves other hosts to the prefix", () => {
    expect(router.route("/v1/invoices", "billing.gw.example:18080")).toMatchObject({
      connection: "billing",
      path: "/v1/invoices",
    });
    expect(router.route("/billing/v1", "gw")).toMatchObject({ connection: "billing", path: "/v1" });
  });

  it("names unknown connections and connections of another type without a config (the gate refuses them)", () => {
    expect(router.route("/nope/x", undefined)).toEqual({ connection: "nope", config: undefined, path: "/x" });
    expect(router.route("/db/x", undefined)).toEqual({ connection: "db", config: undefined, path: "/x" });
  });

  it("refuses an absolute-form target, an empty name and a malformed one", () => {
    expect(router.route("http://evil/x", undefined)).toHaveProperty("error");
    expect(router.route("/", undefined)).toHaveProperty("error");
    expect(router.route("/%E0%A4%A/x", undefined)).toHaveProperty("error");
  });
});

describe("normalizeRequestPath", () => {
  it("decodes unreserved characters, so a rule judges the path the target serves", () => {
    expect(normalizeRequestPath("/%61dmin/%7Euser?q=%2F")).toEqual({ path: "/admin/~user", query: "?q=%2F" });
    expect(normalizeRequestPath("/a%20b")).toEqual({ path: "/a%20b", query: "" });
  });

  it("refuses what a target could read another way", () => {
    for (const p of [
      "/a/../admin",
      "/a/./b",
      "/a//b",
      "/admin%2fusers",
      "/a%5Cb",
      "/a\\b",
      "/%2e%2e/admin",
      "/a%zz",
      "/a/..",
    ])
      expect(normalizeRequestPath(p)).toHaveProperty("error");
  });
});
