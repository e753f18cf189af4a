import { describe, expect, it } from "vitest";
import { isMaskableContentType, jsonOnlyAccept, wantsUnmaskableForm } from "./kubernetes-media-type.js";

// Accept headers kubectl and client-go send
const KUBECTL_GET_TABLE =
  "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const CLIENT_GO_PROTOBUF = "application/vnd.kubernetes.protobuf,application/json";
const KUBECTL_DEFAULT = "application/json, */*";

describe("jsonOnlyAccept", () => {
  it.each([
    [
      KUBECTL_GET_TABLE,
      "application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json",
    ],
    [CLIENT_GO_PROTOBUF, "application/json"],
    [KUBECTL_DEFAULT, "application/json"],
    ["application/vnd.kubernetes.protobuf", "application/json"],
    ["application/yaml", "application/json"],
    ["application/cbor, application/json;q=0.5", "application/json;q=0.5"],
    ["*/*", "application/json"],
    ["application/json;q=0, application/yaml", "application/json"],
    [
      "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io",
      "application/json;as=Table;v=v1;g=meta.k8s.io",
    ],
    ["APPLICATION/JSON; charset=utf-8", "APPLICATION/JSON; charset=utf-8"],
    ['application/json;x="a,b", text/plain', 'application/json;x="a,b"'],
    ["", "application/json"],
  ])("%s -> %s", (accept, expected) => {
    expect(jsonOnlyAccept(accept)).toBe(expected);
  });

  it("no header: JSON", () => {
    expect(jsonOnlyAccept(undefined)).toBe("application/json");
  });
});

describe("wantsUnmaskableForm", () => {
  it.each([
    [undefined, false],
    ["", false],
    ["application/json", false],
    [KUBECTL_GET_TABLE, false],
    [CLIENT_GO_PROTOBUF, true],
    [KUBECTL_DEFAULT, true],
    ["application/yaml", true],
    ["application/cbor", true],
    ["application/json, application/yaml;q=0", false],
  ])("%s: %s", (accept, expected) => {
    expect(wantsUnmaskableForm(accept)).toBe(expected);
  });
});

describe("isMaskableContentType", () => {
  it.each([
    ["application/json", true],
    ["application/json;charset=utf-8", true],
    ["Application/JSON", true],
    ["application/json;as=Table;g=meta.k8s.io;v=v1", true],
    ["application/json;stream=watch", true],
    ["application/vnd.kubernetes.protobuf", false],
    ["application/vnd.kubernetes.protobuf;stream=watch", false],
    ["application/yaml", false],
    ["application/cbor", false],
    ["text/plain", false],
    ["", false],
    [undefined, false],
  ])("%s: %s", (contentType, expected) => {
    expect(isMaskableContentType(contentType)).toBe(expected);
  });
});
