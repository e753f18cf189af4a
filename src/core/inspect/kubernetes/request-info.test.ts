import { describe, expect, it } from "vitest";
import type { ApiCallFact } from "../../policy/facts.js";
import { KUBERNETES_VERBS } from "../../policy/vocabulary.js";
import { kubernetesRequestFacts } from "./index.js";

function facts(method: string, url: string) {
  const [path, query = ""] = url.split("?") as [string, string?];
  return kubernetesRequestFacts(method, path, new URLSearchParams(query));
}

const core = (call: Omit<ApiCallFact, "group" | "version">): ApiCallFact => ({ group: "", version: "v1", ...call });

// [what kubectl (or curl) does, method, path?query, expected call]
const CASES: [string, string, string, ApiCallFact][] = [
  // reads
  ["get pods -A", "GET", "/api/v1/pods?limit=500", core({ verb: "list", resource: "pods" })],
  [
    "get pods -n prod",
    "GET",
    "/api/v1/namespaces/prod/pods?limit=500",
    core({ verb: "list", resource: "pods", namespace: "prod" }),
  ],
  [
    "get pod web-1",
    "GET",
    "/api/v1/namespaces/prod/pods/web-1",
    core({ verb: "get", resource: "pods", namespace: "prod", name: "web-1" }),
  ],
  [
    "get secret -o yaml",
    "GET",
    "/api/v1/namespaces/prod/secrets/db-creds",
    core({ verb: "get", resource: "secrets", namespace: "prod", name: "db-creds" }),
  ],
  [
    "get secrets (table)",
    "GET",
    "/api/v1/namespaces/prod/secrets?limit=500",
    core({ verb: "list", resource: "secrets", namespace: "prod" }),
  ],
  [
    "HEAD reads like GET",
    "HEAD",
    "/api/v1/namespaces/prod/pods/web-1",
    core({ verb: "get", resource: "pods", namespace: "prod", name: "web-1" }),
  ],
  ["get nodes", "GET", "/api/v1/nodes", core({ verb: "list", resource: "nodes" })],
  ["get node", "GET", "/api/v1/nodes/worker-1", core({ verb: "get", resource: "nodes", name: "worker-1" })],
  [
    "get clusterroles",
    "GET",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:aggregate-to-admin",
    {
      verb: "get",
      group: "rbac.authorization.k8s.io",
      version: "v1",
      resource: "clusterroles",
      name: "system:aggregate-to-admin",
    },
  ],
  [
    "get deployments in apps/v1",
    "GET",
    "/apis/apps/v1/namespaces/prod/deployments",
    { verb: "list", group: "apps", version: "v1", resource: "deployments", namespace: "prod" },
  ],
  [
    "get pod web -w (list form)",
    "GET",
    "/api/v1/namespaces/prod/pods?fieldSelector=metadata.name%3Dweb&watch=true",
    core({ verb: "watch", resource: "pods", namespace: "prod", name: "web" }),
  ],
  [
    "get pod web (list form, not watch)",
    "GET",
    "/api/v1/namespaces/prod/pods?fieldSelector=metadata.name%3D%3Dweb",
    core({ verb: "list", resource: "pods", namespace: "prod", name: "web" }),
  ],
  // watches
  [
    "watch pods (query)",
    "GET",
    "/api/v1/namespaces/prod/pods?watch=true&resourceVersion=1234",
    core({ verb: "watch", resource: "pods", namespace: "prod" }),
  ],
  ["watch=1", "GET", "/api/v1/pods?watch=1", core({ verb: "watch", resource: "pods" })],
  [
    "watch=yes is a watch too (API server: not 0/false)",
    "GET",
    "/api/v1/pods?watch=yes",
    core({ verb: "watch", resource: "pods" }),
  ],
  ["watch= is a watch", "GET", "/api/v1/pods?watch=", core({ verb: "watch", resource: "pods" })],
  ["watch=false", "GET", "/api/v1/pods?watch=false", core({ verb: "list", resource: "pods" })],
  [
    "watch=FALSE, first value decides",
    "GET",
    "/api/v1/pods?watch=FALSE&watch=true",
    core({ verb: "list", resource: "pods" }),
  ],
  ["watch=0", "GET", "/api/v1/pods?watch=0", core({ verb: "list", resource: "pods" })],
  [
    "watch (legacy prefix)",
    "GET",
    "/api/v1/watch/namespaces/prod/pods",
    core({ verb: "watch", resource: "pods", namespace: "prod" }),
  ],
  [
    "watch one (legacy prefix)",
    "GET",
    "/api/v1/watch/namespaces/prod/pods/web-1",
    core({ verb: "watch", resource: "pods", namespace: "prod", name: "web-1" }),
  ],
  [
    "watch all (legacy prefix, group)",
    "GET",
    "/apis/apps/v1/watch/deployments",
    { verb: "watch", group: "apps", version: "v1", resource: "deployments" },
  ],
  ["watch namespaces (legacy)", "GET", "/api/v1/watch/namespaces", core({ verb: "watch", resource: "namespaces" })],
  // writes
  [
    "create deployment",
    "POST",
    "/apis/apps/v1/namespaces/prod/deployments?fieldManager=kubectl-create",
    { verb: "create", group: "apps", version: "v1", resource: "deployments", namespace: "prod" },
  ],
  [
    "replace configmap",
    "PUT",
    "/api/v1/namespaces/prod/configmaps/app",
    core({ verb: "update", resource: "configmaps", namespace: "prod", name: "app" }),
  ],
  [
    "patch deployment",
    "PATCH",
    "/apis/apps/v1/namespaces/prod/deployments/web?fieldManager=kubectl-patch",
    { verb: "patch", group: "apps", version: "v1", resource: "deployments", namespace: "prod", name: "web" },
  ],
  [
    "apply (server side)",
    "PATCH",
    "/apis/apps/v1/namespaces/prod/deployments/web?fieldManager=kubectl&force=true",
    { verb: "patch", group: "apps", version: "v1", resource: "deployments", namespace: "prod", name: "web" },
  ],
  [
    "delete pod",
    "DELETE",
    "/api/v1/namespaces/prod/pods/web-1",
    core({ verb: "delete", resource: "pods", namespace: "prod", name: "web-1" }),
  ],
  [
    "delete pods --all",
    "DELETE",
    "/api/v1/namespaces/prod/pods",
    core({ verb: "deletecollection", resource: "pods", namespace: "prod" }),
  ],
  [
    "delete collection with fieldSelector stays deletecollection",
    "DELETE",
    "/api/v1/namespaces/prod/pods?fieldSelector=metadata.name%3Dweb",
    core({ verb: "deletecollection", resource: "pods", namespace: "prod" }),
  ],
  // namespaces themselves
  ["get namespaces", "GET", "/api/v1/namespaces", core({ verb: "list", resource: "namespaces" })],
  ["create namespace", "POST", "/api/v1/namespaces", core({ verb: "create", resource: "namespaces" })],
  [
    "get ns prod",
    "GET",
    "/api/v1/namespaces/prod",
    core({ verb: "get", resource: "namespaces", namespace: "prod", name: "prod" }),
  ],
  [
    "delete ns prod",
    "DELETE",
    "/api/v1/namespaces/prod",
    core({ verb: "delete", resource: "namespaces", namespace: "prod", name: "prod" }),
  ],
  [
    "namespace status",
    "PUT",
    "/api/v1/namespaces/prod/status",
    core({ verb: "update", resource: "namespaces", namespace: "prod", name: "prod", subresource: "status" }),
  ],
  [
    "namespace finalize",
    "PUT",
    "/api/v1/namespaces/prod/finalize",
    core({ verb: "update", resource: "namespaces", namespace: "prod", name: "prod", subresource: "finalize" }),
  ],
  // subresources
  [
    "pod status",
    "PATCH",
    "/api/v1/namespaces/prod/pods/web-1/status",
    core({ verb: "patch", resource: "pods", namespace: "prod", name: "web-1", subresource: "status" }),
  ],
  [
    "scale deployment",
    "PATCH",
    "/apis/apps/v1/namespaces/prod/deployments/web/scale",
    {
      verb: "patch",
      group: "apps",
      version: "v1",
      resource: "deployments",
      namespace: "prod",
      name: "web",
      subresource: "scale",
    },
  ],
  [
    "get scale",
    "GET",
    "/apis/apps/v1/namespaces/prod/deployments/web/scale",
    {
      verb: "get",
      group: "apps",
      version: "v1",
      resource: "deployments",
      namespace: "prod",
      name: "web",
      subresource: "scale",
    },
  ],
  [
    "evict pod (drain)",
    "POST",
    "/api/v1/namespaces/prod/pods/web-1/eviction",
    core({ verb: "create", resource: "pods", namespace: "prod", name: "web-1", subresource: "eviction" }),
  ],
  [
    "kubectl debug (ephemeral containers)",
    "PATCH",
    "/api/v1/namespaces/prod/pods/web-1/ephemeralcontainers",
    core({ verb: "patch", resource: "pods", namespace: "prod", name: "web-1", subresource: "ephemeralcontainers" }),
  ],
  [
    "create token",
    "POST",
    "/api/v1/namespaces/prod/serviceaccounts/deployer/token",
    core({ verb: "create", resource: "serviceaccounts", namespace: "prod", name: "deployer", subresource: "token" }),
  ],
  // connect-style subresources
  [
    "exec (SPDY)",
    "POST",
    "/api/v1/namespaces/prod/pods/web-1/exec?command=sh&command=-c&command=id&container=app&stdin=true&stdout=true&tty=true",
    core({ verb: "exec", resource: "pods", namespace: "prod", name: "web-1", subresource: "exec" }),
  ],
  [
    "exec (WebSocket)",
    "GET",
    "/api/v1/namespaces/prod/pods/web-1/exec?command=ls&stdout=true",
    core({ verb: "exec", resource: "pods", namespace: "prod", name: "web-1", subresource: "exec" }),
  ],
  [
    "attach",
    "POST",
    "/api/v1/namespaces/prod/pods/web-1/attach?container=app&stdin=true",
    core({ verb: "attach", resource: "pods", namespace: "prod", name: "web-1", subresource: "attach" }),
  ],
  [
    "logs -f",
    "GET",
    "/api/v1/namespaces/prod/pods/web-1/log?container=app&follow=true",
    core({ verb: "log", resource: "pods", namespace: "prod", name: "web-1", subresource: "log" }),
  ],
  [
    "log whatever the method",
    "POST",
    "/api/v1/namespaces/prod/pods/web-1/log",
    core({ verb: "log", resource: "pods", namespace: "prod", name: "web-1", subresource: "log" }),
  ],
  [
    "port-forward",
    "POST",
    "/api/v1/namespaces/prod/pods/web-1/portforward?ports=8080",
    core({ verb: "portforward", resource: "pods", namespace: "prod", name: "web-1", subresource: "portforward" }),
  ],
  [
    "pod proxy",
    "GET",
    "/api/v1/namespaces/prod/pods/web-1/proxy/metrics",
    core({ verb: "proxy", resource: "pods", namespace: "prod", name: "web-1", subresource: "proxy" }),
  ],
  [
    "pod proxy (port in name)",
    "GET",
    "/api/v1/namespaces/prod/pods/web-1:8080/proxy/",
    core({ verb: "proxy", resource: "pods", namespace: "prod", name: "web-1:8080", subresource: "proxy" }),
  ],
  [
    "service proxy",
    "GET",
    "/api/v1/namespaces/kube-system/services/https:dashboard:/proxy/",
    core({
      verb: "proxy",
      resource: "services",
      namespace: "kube-system",
      name: "https:dashboard:",
      subresource: "proxy",
    }),
  ],
  [
    "service proxy with escapes in the proxied path",
    "GET",
    "/api/v1/namespaces/prod/services/web/proxy/a%20b/c;x",
    core({ verb: "proxy", resource: "services", namespace: "prod", name: "web", subresource: "proxy" }),
  ],
  [
    "node proxy (kubelet API)",
    "GET",
    "/api/v1/nodes/worker-1/proxy/stats/summary",
    core({ verb: "proxy", resource: "nodes", name: "worker-1", subresource: "proxy" }),
  ],
  [
    "legacy proxy prefix",
    "GET",
    "/api/v1/proxy/namespaces/prod/services/web/healthz",
    core({ verb: "proxy", resource: "services", namespace: "prod", name: "web", subresource: "proxy" }),
  ],
  [
    "exec on a non-core group keeps RBAC's verb",
    "POST",
    "/apis/example.com/v1/namespaces/prod/pods/x/exec",
    {
      verb: "create",
      group: "example.com",
      version: "v1",
      resource: "pods",
      namespace: "prod",
      name: "x",
      subresource: "exec",
    },
  ],
  // custom resources
  [
    "CRD list",
    "GET",
    "/apis/cert-manager.io/v1/namespaces/prod/certificates",
    { verb: "list", group: "cert-manager.io", version: "v1", resource: "certificates", namespace: "prod" },
  ],
  [
    "CRD status",
    "PUT",
    "/apis/cert-manager.io/v1/namespaces/prod/certificates/web-tls/status",
    {
      verb: "update",
      group: "cert-manager.io",
      version: "v1",
      resource: "certificates",
      namespace: "prod",
      name: "web-tls",
      subresource: "status",
    },
  ],
  [
    "cluster-scoped CRD",
    "DELETE",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/certificates.cert-manager.io",
    {
      verb: "delete",
      group: "apiextensions.k8s.io",
      version: "v1",
      resource: "customresourcedefinitions",
      name: "certificates.cert-manager.io",
    },
  ],
  [
    "trailing slash is dropped",
    "GET",
    "/api/v1/namespaces/prod/pods/",
    core({ verb: "list", resource: "pods", namespace: "prod" }),
  ],
];

const NON_RESOURCE: [string, string][] = [
  ["GET", "/"],
  ["GET", "/version"],
  ["GET", "/api"],
  ["GET", "/api/v1"],
  ["GET", "/apis"],
  ["GET", "/apis/apps"],
  ["GET", "/apis/apps/v1"],
  ["GET", "/apis/cert-manager.io/v1/"],
  ["GET", "/openapi/v2"],
  ["GET", "/openapi/v3/apis/apps/v1"],
  ["GET", "/healthz"],
  ["GET", "/livez/etcd"],
  ["GET", "/metrics"],
  ["GET", "/.well-known/openid-configuration"],
  ["HEAD", "/readyz"],
];

describe("kubernetesRequestFacts: resource requests", () => {
  it.each(CASES)("%s: %s %s", (_what, method, url, expected) => {
    expect(facts(method, url)).toEqual({ call: expected });
  });

  it("every verb is in the policy vocabulary", () => {
    const verbs: readonly string[] = KUBERNETES_VERBS;
    for (const [, method, url] of CASES) {
      const r = facts(method, url);
      expect("call" in r && verbs.includes(r.call.verb), url).toBe(true);
    }
  });
});

describe("kubernetesRequestFacts: non-resource requests", () => {
  it.each(NON_RESOURCE)("%s %s", (method, path) => {
    expect(facts(method, path)).toEqual({ call: { verb: "get", resource: "", path } });
  });

  it("a write to a non-resource path keeps its method's verb, not get", () => {
    expect(facts("POST", "/metrics")).toEqual({ call: { verb: "create", resource: "", path: "/metrics" } });
    expect(facts("DELETE", "/logs/x")).toEqual({ call: { verb: "delete", resource: "", path: "/logs/x" } });
  });
});

describe("kubernetesRequestFacts: malformed and suspicious requests are unparseable", () => {
  const BAD: [string, string, string][] = [
    ["percent-encoded slash hides the exec subresource", "POST", "/api/v1/namespaces/prod/pods/web%2Fexec"],
    ["lower-case %2f", "POST", "/api/v1/namespaces/prod/pods/web%2fexec"],
    ["percent-encoded prefix (Go decodes %61pi to api)", "GET", "/%61pi/v1/namespaces/prod/secrets"],
    ["percent-encoded dot", "GET", "/api/v1/namespaces/prod/pods/%2E%2E/secrets"],
    ["any escape in a resource part", "GET", "/api/v1/namespaces/prod/pods/web%2D1"],
    ["dot-dot segment", "GET", "/api/v1/namespaces/prod/pods/web/../../secrets/x"],
    ["dot segment", "GET", "/api/v1/namespaces/./pods"],
    ["double slash", "GET", "/api/v1//namespaces/prod/secrets"],
    ["double slash at the end", "GET", "/api/v1/pods//"],
    ["leading double slash", "GET", "//api/v1/pods"],
    ["dot-dot out of a proxy", "GET", "/api/v1/namespaces/prod/services/web/proxy/../../pods/x/exec"],
    ["encoded dot-dot out of a proxy", "GET", "/api/v1/namespaces/prod/services/web/proxy/%2e%2e/x"],
    ["double-encoded dot-dot out of a proxy", "GET", "/api/v1/namespaces/prod/services/web/proxy/%252e%252e/x"],
    ["encoded slash in a proxied path", "GET", "/api/v1/nodes/n1/proxy/a%2F..%2F..%2Fx"],
    ["invalid escape in a proxied path", "GET", "/api/v1/nodes/n1/proxy/%zz"],
    ["encoded NUL in a proxied path", "GET", "/api/v1/nodes/n1/proxy/a%00b"],
    ["backslash", "GET", "/api/v1/namespaces/prod/pods\\x"],
    ["backslash in a proxied path", "GET", "/api/v1/nodes/n1/proxy/a\\..\\x"],
    ["semicolon parameters", "GET", "/api/v1/namespaces/prod/secrets;x/y"],
    ["raw space", "GET", "/api/v1/namespaces/prod/pods/a b"],
    ["non-ASCII", "GET", "/api/v1/namespaces/prod/pods/wéb"],
    ["query left in the path", "GET", "/api/v1/pods?watch=1"],
    ["relative path", "GET", "api/v1/pods"],
    ["empty path", "GET", ""],
    ["watch prefix with nothing after it", "GET", "/api/v1/watch"],
    ["proxy prefix with nothing after it", "GET", "/apis/apps/v1/proxy"],
    ["OPTIONS has no verb", "OPTIONS", "/api/v1/pods"],
    ["lower-case method", "get", "/api/v1/pods"],
    ["CONNECT", "CONNECT", "/api/v1/namespaces/prod/pods/web/exec"],
    ["escape in a non-resource path", "GET", "/openapi/v3/apis%2Fapps"],
  ];

  it.each(BAD)("%s: %s %s", (_what, method, path) => {
    const r = kubernetesRequestFacts(method, path, new URLSearchParams());
    expect(r).toHaveProperty("unparseable");
    expect((r as { unparseable: string }).unparseable.length).toBeGreaterThan(0);
  });

  it("an odd fieldSelector names nothing but the call still parses", () => {
    for (const selector of ["metadata.name=a\\,b", "metadata.name=..", "metadata.name=a/b", "metadata.namespace=x"]) {
      const r = kubernetesRequestFacts("GET", "/api/v1/pods", new URLSearchParams({ fieldSelector: selector }));
      expect(r, selector).toEqual({ call: core({ verb: "list", resource: "pods" }) });
    }
  });
});
