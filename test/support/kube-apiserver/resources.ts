/** The resource types the stand-in serves: what discovery advertises, and how each prints as a table row. */

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  generateName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface ColumnDefinition {
  name: string;
  type: "string" | "integer" | "date";
  format: string;
  description: string;
  priority: number;
}

export interface ResourceDef {
  group: string; // "" for the core group
  version: string;
  resource: string; // plural, as in the URL
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  /** table columns after NAME (NAME and AGE are added around them) */
  columns: Omit<ColumnDefinition, "description" | "format">[];
  cells: (o: KubeObject) => (string | number)[];
}

const ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

function field(o: KubeObject, ...path: string[]): unknown {
  let v: unknown = o;
  for (const p of path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[p] : undefined;
  return v;
}

const str = (v: unknown, dflt = "") => (typeof v === "string" ? v : v === undefined ? dflt : String(v));
const keyCount = (v: unknown) => (v && typeof v === "object" ? Object.keys(v).length : 0);

export const RESOURCES: ResourceDef[] = [
  {
    group: "",
    version: "v1",
    resource: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    shortNames: ["ns"],
    verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
    columns: [{ name: "Status", type: "string", priority: 0 }],
    cells: (o) => [str(field(o, "status", "phase"), "Active")],
  },
  {
    group: "",
    version: "v1",
    resource: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    shortNames: ["po"],
    verbs: ALL_VERBS,
    columns: [
      { name: "Ready", type: "string", priority: 0 },
      { name: "Status", type: "string", priority: 0 },
      { name: "Restarts", type: "string", priority: 0 },
      { name: "IP", type: "string", priority: 1 },
      { name: "Node", type: "string", priority: 1 },
    ],
    cells: (o) => {
      const containers = field(o, "spec", "containers");
      const n = Array.isArray(containers) ? containers.length : 0;
      const phase = str(field(o, "status", "phase"), "Pending");
      return [`${phase === "Running" ? n : 0}/${n}`, phase, "0", str(field(o, "status", "podIP"), "<none>"), "node-1"];
    },
  },
  {
    group: "",
    version: "v1",
    resource: "secrets",
    singular: "secret",
    kind: "Secret",
    namespaced: true,
    shortNames: [],
    verbs: ALL_VERBS,
    columns: [
      { name: "Type", type: "string", priority: 0 },
      { name: "Data", type: "integer", priority: 0 },
    ],
    cells: (o) => [str(field(o, "type"), "Opaque"), keyCount(field(o, "data"))],
  },
  {
    group: "",
    version: "v1",
    resource: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    namespaced: true,
    shortNames: ["cm"],
    verbs: ALL_VERBS,
    columns: [{ name: "Data", type: "integer", priority: 0 }],
    cells: (o) => [keyCount(field(o, "data"))],
  },
  {
    group: "apps",
    version: "v1",
    resource: "deployments",
    singular: "deployment",
    kind: "Deployment",
    namespaced: true,
    shortNames: ["deploy"],
    verbs: ALL_VERBS,
    columns: [
      { name: "Ready", type: "string", priority: 0 },
      { name: "Up-to-date", type: "integer", priority: 0 },
      { name: "Available", type: "integer", priority: 0 },
    ],
    cells: (o) => {
      const want = Number(field(o, "spec", "replicas") ?? 1);
      const ready = Number(field(o, "status", "readyReplicas") ?? 0);
      return [`${ready}/${want}`, Number(field(o, "status", "updatedReplicas") ?? 0), ready];
    },
  },
];

export const apiVersionOf = (d: ResourceDef) => (d.group ? `${d.group}/${d.version}` : d.version);

export function findResource(group: string, version: string, resource: string): ResourceDef | undefined {
  return RESOURCES.find((d) => d.group === group && d.version === version && d.resource === resource);
}
