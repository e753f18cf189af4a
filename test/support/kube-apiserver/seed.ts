/** The objects a fresh stand-in holds. Secrets carry real-looking values so tests can check where they travel. */
import type { KubeObject } from "./resources.js";

export const SEED_SECRET_VALUES = {
  password: "s3cr3t-Passw0rd!",
  apiKey: "ak_live_51HxQzTESTKEY0123456789",
  kubeSystemToken: "kube-system-token-value-0f9e8d",
};

const b64 = (s: string) => Buffer.from(s).toString("base64");

function pod(namespace: string, name: string, image: string, ip: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { app: name.replace(/-[a-z0-9]+$/, "") } },
    spec: { containers: [{ name: "main", image }], nodeName: "node-1", restartPolicy: "Always" },
    status: { phase: "Running", podIP: ip, hostIP: "10.0.0.1" },
  };
}

export function seedObjects(): { resource: string; object: KubeObject }[] {
  const ns = (name: string): KubeObject => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: { "kubernetes.io/metadata.name": name } },
    spec: { finalizers: ["kubernetes"] },
    status: { phase: "Active" },
  });
  const appCredentialsData = { password: b64(SEED_SECRET_VALUES.password), "api-key": b64(SEED_SECRET_VALUES.apiKey) };
  // what `kubectl apply` leaves behind: the applied object, data included, as JSON in an annotation
  const lastApplied = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { annotations: {}, name: "app-credentials", namespace: "default" },
    type: "Opaque",
    data: appCredentialsData,
  };
  return [
    ...["default", "kube-system", "prod"].map((n) => ({ resource: "namespaces", object: ns(n) })),
    { resource: "pods", object: pod("default", "web-7f9c4", "nginx:1.27", "10.244.0.11") },
    { resource: "pods", object: pod("default", "worker-5d8b2", "busybox:1.36", "10.244.0.12") },
    { resource: "pods", object: pod("prod", "api-6c7d9", "ghcr.io/example/api:2.4", "10.244.1.21") },
    { resource: "pods", object: pod("prod", "db-0", "postgres:15", "10.244.1.22") },
    { resource: "pods", object: pod("kube-system", "coredns-668d6", "coredns:1.11", "10.244.0.2") },
    {
      resource: "secrets",
      object: {
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name: "app-credentials",
          namespace: "default",
          annotations: { "kubectl.kubernetes.io/last-applied-configuration": `${JSON.stringify(lastApplied)}\n` },
        },
        type: "Opaque",
        data: appCredentialsData,
      },
    },
    {
      resource: "secrets",
      object: {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "bootstrap-token", namespace: "kube-system" },
        type: "Opaque",
        data: { token: b64(SEED_SECRET_VALUES.kubeSystemToken) },
      },
    },
    {
      resource: "configmaps",
      object: {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "app-config", namespace: "default" },
        data: { LOG_LEVEL: "info" },
      },
    },
    {
      resource: "deployments",
      object: {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "web", namespace: "default", labels: { app: "web" } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: { containers: [{ name: "main", image: "nginx:1.27" }] },
          },
        },
        status: { replicas: 1, readyReplicas: 1, updatedReplicas: 1, availableReplicas: 1 },
      },
    },
  ];
}
