/**
 * Just enough OpenAPI v3 for kubectl's create/apply/replace to validate on the server: with --validate=strict (the
 * default) kubectl reads /openapi/v3, then the group version's document, and looks for a PATCH operation of the
 * object's kind that takes the `fieldValidation` query parameter (cli-runtime query_param_verifier_v3.go). Found,
 * it sends fieldValidation=Strict and needs no schema; when /openapi/v3 and /openapi/v2 are both 404 it fails with
 * "failed to download openapi". No schemas are served, so `kubectl explain` does not work.
 */
import { RESOURCES, type ResourceDef } from "./resources.js";

const gvPath = (d: ResourceDef) => (d.group ? `apis/${d.group}/${d.version}` : `api/${d.version}`);

export function openApiV3Root(): unknown {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const d of RESOURCES) paths[gvPath(d)] = { serverRelativeURL: `/openapi/v3/${gvPath(d)}?hash=standin1` };
  return { paths };
}

export function openApiV3Document(gv: string): unknown {
  const defs = RESOURCES.filter((d) => gvPath(d) === gv);
  if (defs.length === 0) return undefined;
  const paths: Record<string, unknown> = {};
  for (const d of defs) {
    const gvk = { group: d.group, version: d.version, kind: d.kind };
    const item = `/${gv}${d.namespaced ? "/namespaces/{namespace}" : ""}/${d.resource}/{name}`;
    const op = (verb: string) => ({
      operationId: `${verb}${d.kind}`,
      "x-kubernetes-action": verb,
      "x-kubernetes-group-version-kind": gvk,
      parameters: ["dryRun", "fieldManager", "fieldValidation"].map((name) => ({
        name,
        in: "query",
        schema: { type: "string", uniqueItems: true },
      })),
      responses: { "200": { description: "OK" } },
    });
    paths[item] = { patch: op("patch"), put: op("put") };
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: "v1.33.0" },
    paths,
    components: { schemas: {} },
  };
}
