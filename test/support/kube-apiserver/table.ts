/**
 * Server-side printing. `kubectl get` (no -o, or -o wide) asks for
 * `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`
 * and prints the Table's cells as they come; it adds the NAMESPACE column itself (-A) from each row's object
 * metadata, which is why rows carry a PartialObjectMetadata by default (includeObject=Metadata).
 */
import type { ColumnDefinition, KubeObject, ResourceDef } from "./resources.js";

export type IncludeObject = "None" | "Metadata" | "Object";

/** The Table version an Accept header asks for ("v1" or "v1beta1"), or undefined for plain JSON. */
export function tableVersionAccepted(accept: string | undefined): string | undefined {
  for (const part of (accept ?? "").split(",")) {
    const [type, ...params] = part.split(";").map((s) => s.trim());
    if (type !== "application/json" && type !== "*/*") continue;
    const p = Object.fromEntries(params.map((kv) => kv.split("=").map((s) => s.trim()) as [string, string]));
    if (p.as === "Table" && p.g === "meta.k8s.io" && (p.v === "v1" || p.v === "v1beta1")) return p.v;
    if (!p.as) return undefined; // a plain JSON entry listed first wins
  }
  return undefined;
}

export function tableContentType(version: string): string {
  return `application/json;as=Table;v=${version};g=meta.k8s.io`;
}

export function columnDefinitions(d: ResourceDef): ColumnDefinition[] {
  const col = (name: string, type: ColumnDefinition["type"], priority: number, format = "") => ({
    name,
    type,
    format,
    description: `${name} of the ${d.singular}`,
    priority,
  });
  return [
    col("Name", "string", 0, "name"),
    ...d.columns.map((c) => col(c.name, c.type, c.priority)),
    col("Age", "string", 0),
  ];
}

function rowObject(o: KubeObject, include: IncludeObject, version: string): unknown {
  if (include === "None") return undefined;
  if (include === "Object") return o;
  return { kind: "PartialObjectMetadata", apiVersion: `meta.k8s.io/${version}`, metadata: o.metadata };
}

export function table(
  d: ResourceDef,
  objects: KubeObject[],
  o: { version: string; include: IncludeObject; resourceVersion?: string; headers?: boolean },
): unknown {
  return {
    kind: "Table",
    apiVersion: `meta.k8s.io/${o.version}`,
    metadata: o.resourceVersion ? { resourceVersion: o.resourceVersion } : {},
    columnDefinitions: o.headers === false ? null : columnDefinitions(d),
    rows: objects.map((obj) => {
      const object = rowObject(obj, o.include, o.version);
      return { cells: [obj.metadata.name, ...d.cells(obj), age(obj)], ...(object ? { object } : {}) };
    }),
  };
}

/** Like kubectl's HumanDuration: 45s, 3m20s, 15m, 2h5m, 3d4h, 40d. */
function age(o: KubeObject): string {
  const created = Date.parse(o.metadata.creationTimestamp ?? "");
  if (Number.isNaN(created)) return "<unknown>";
  const s = Math.max(0, Math.floor((Date.now() - created) / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const days = Math.floor(h / 24);
  if (s < 120) return `${s}s`;
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (h < 3) return `${m}m`;
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) return h % 24 ? `${days}d${h % 24}h` : `${days}d`;
  return `${days}d`;
}
