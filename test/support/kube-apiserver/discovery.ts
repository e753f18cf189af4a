/**
 * Legacy (unaggregated) discovery. kubectl >= 1.30 asks for aggregated discovery first
 * (Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...,application/json); answered
 * with a plain `application/json` Content-Type, client-go takes the body as the legacy APIVersions/APIGroupList and
 * then fetches each group version's APIResourceList, as with an older server.
 */
import { apiVersionOf, RESOURCES, type ResourceDef } from "./resources.js";

export const SERVER_VERSION = {
  major: "1",
  minor: "33",
  gitVersion: "v1.33.0-gatehouse-standin",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2026-01-01T00:00:00Z",
  goVersion: "go1.24.0",
  compiler: "gc",
  platform: "linux/amd64",
};

export function apiVersions(serverAddress: string): unknown {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

function groups(): Map<string, string[]> {
  const byGroup = new Map<string, string[]>();
  for (const d of RESOURCES.filter((r) => r.group)) {
    const versions = byGroup.get(d.group) ?? [];
    if (!versions.includes(d.version)) versions.push(d.version);
    byGroup.set(d.group, versions);
  }
  return byGroup;
}

function apiGroup(name: string, versions: string[]): unknown {
  const gvs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: gvs, preferredVersion: gvs[0] };
}

export function apiGroupList(): unknown {
  return {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: [...groups()].map(([name, versions]) => apiGroup(name, versions)),
  };
}

export function apiGroupFor(name: string): unknown {
  const versions = groups().get(name);
  return versions && { kind: "APIGroup", apiVersion: "v1", ...(apiGroup(name, versions) as object) };
}

/** The APIResourceList of one group version, or undefined if the stand-in serves no such group version. */
export function apiResourceList(group: string, version: string): unknown {
  const defs = RESOURCES.filter((d) => d.group === group && d.version === version);
  if (defs.length === 0) return undefined;
  const resources = defs.flatMap((d) => [resourceEntry(d), ...subresources(d)]);
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: apiVersionOf(defs[0] as ResourceDef), resources };
}

function resourceEntry(d: ResourceDef): unknown {
  return {
    name: d.resource,
    singularName: d.singular,
    namespaced: d.namespaced,
    kind: d.kind,
    verbs: d.verbs,
    ...(d.shortNames.length ? { shortNames: d.shortNames } : {}),
    ...(d.resource === "pods" || d.resource === "deployments" ? { categories: ["all"] } : {}),
  };
}

function subresources(d: ResourceDef): unknown[] {
  if (d.resource !== "pods") return [];
  const sub = (name: string, kind: string, verbs: string[]) => ({
    name,
    singularName: "",
    namespaced: true,
    kind,
    verbs,
  });
  return [
    sub("pods/log", "Pod", ["get"]),
    sub("pods/exec", "PodExecOptions", ["create", "get"]),
    sub("pods/attach", "PodAttachOptions", ["create", "get"]),
    sub("pods/status", "Pod", ["get", "patch", "update"]),
  ];
}
