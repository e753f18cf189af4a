import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { JsonLinesMasker } from "../../core/masking/json-lines.js";
import { COLUMN_MASK } from "../../core/masking/masker.js";
import {
  LAST_APPLIED,
  MASKED_SECRET_DATA,
  MAX_SECRET_WALK_DEPTH,
  SecretMaskError,
  maskKubernetesSecrets,
} from "./kubernetes-secret-mask.js";

// Bodies as the API server sends them (kubectl get secret -o json, list, watch, Table for `kubectl get secrets`).
const fixture = (name: string): string =>
  readFileSync(new URL(`./testdata/kubernetes/${name}`, import.meta.url), "utf8");
const load = (name: string): unknown => JSON.parse(fixture(name));

// Every secret value in the fixtures, encoded and decoded: none may survive masking.
const SECRETS = [
  "czNjcjN0LXBhc3M=",
  "s3cr3t-pass",
  "YWRtaW4=",
  "ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNklrRkNRMFFpZlEu",
  "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
  "cHJvZA==",
];

function expectNoSecret(value: unknown): void {
  const text = JSON.stringify(value);
  for (const s of SECRETS) expect(text).not.toContain(s);
}

const annotationPath = `.metadata.annotations["${LAST_APPLIED}"]`;

describe("maskKubernetesSecrets", () => {
  it("MASKED_SECRET_DATA is valid base64 of the column mask", () => {
    expect(Buffer.from(MASKED_SECRET_DATA, "base64").toString()).toBe(COLUMN_MASK);
    expect(MASKED_SECRET_DATA).toBe("KioqKioqKio=");
  });

  it("a Secret (kubectl get secret -o yaml): data values masked, keys kept, last-applied masked, the rest as it was", () => {
    const secret = load("secret.json") as Record<string, Record<string, unknown>>;
    const before = structuredClone(secret);
    const r = maskKubernetesSecrets(secret);
    expect(secret).toEqual(before); // the input is untouched
    const out = r.value as typeof secret;
    expect(out.data).toEqual({ password: MASKED_SECRET_DATA, username: MASKED_SECRET_DATA });
    expect(out.metadata?.annotations).toEqual({ [LAST_APPLIED]: COLUMN_MASK });
    expect(out.metadata?.managedFields).toBe(secret.metadata?.managedFields); // key names only, shared
    expect({ ...out, data: secret.data, metadata: secret.metadata }).toEqual(secret);
    expect(r.hits).toEqual(["$.data.password", "$.data.username", `$${annotationPath}`]);
    expectNoSecret(out);
  });

  it("a SecretList: its items carry no kind and are Secrets all the same", () => {
    const list = load("secret-list.json") as { items: Record<string, unknown>[] };
    const r = maskKubernetesSecrets(list);
    const out = r.value as typeof list;
    expect(out.items[0]?.data).toEqual({ password: MASKED_SECRET_DATA, username: MASKED_SECRET_DATA });
    expect(out.items[1]?.data).toEqual({
      "ca.crt": MASKED_SECRET_DATA,
      namespace: MASKED_SECRET_DATA,
      token: MASKED_SECRET_DATA,
    });
    expect(out.items[2]).toBe(list.items[2]); // no data: nothing to mask
    expect(r.hits).toEqual([
      "$.items[0].data.password",
      "$.items[0].data.username",
      `$.items[0]${annotationPath}`,
      '$.items[1].data["ca.crt"]',
      "$.items[1].data.namespace",
      "$.items[1].data.token",
    ]);
    expectNoSecret(out);
  });

  it("a watch stream: every event's Secret masked, BOOKMARK and ERROR (Status) lines pass unchanged", () => {
    const stream = fixture("secret-watch.jsonl");
    const hits: string[] = [];
    const parts: Buffer[] = [];
    const masker = new JsonLinesMasker(
      (doc) => {
        const r = maskKubernetesSecrets(doc);
        hits.push(...r.hits);
        return r;
      },
      (b) => parts.push(b),
      1 << 20,
    );
    masker.write(Buffer.from(stream));
    masker.end();
    const inLines = stream.trimEnd().split("\n");
    const outLines = Buffer.concat(parts).toString().trimEnd().split("\n");
    expect(outLines).toHaveLength(5);
    expect(outLines[2]).toBe(inLines[2]); // BOOKMARK
    expect(outLines[4]).toBe(inLines[4]); // ERROR
    const events = outLines.map((l) => JSON.parse(l) as { type: string; object: { data?: unknown } });
    expect(events.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "BOOKMARK", "DELETED", "ERROR"]);
    expect(events[0]?.object.data).toEqual({ password: MASKED_SECRET_DATA, username: MASKED_SECRET_DATA });
    expect(hits).toContain("$.object.data.token");
    expectNoSecret(events);
  });

  it("a Table with metadata-only rows (kubectl get secrets): PartialObjectMetadata's last-applied masked", () => {
    const table = load("secret-table-metadata.json") as { rows: { cells: unknown[]; object: unknown }[] };
    const r = maskKubernetesSecrets(table);
    const out = r.value as typeof table;
    expect(r.hits).toEqual([`$.rows[0].object${annotationPath}`]);
    expect(out.rows[0]?.cells).toBe(table.rows[0]?.cells);
    expect(out.rows[1]).toBe(table.rows[1]); // its annotations hold no Secret
    expectNoSecret(out);
  });

  it("a Table with full objects (includeObject=Object)", () => {
    const table = load("secret-table-object.json");
    const r = maskKubernetesSecrets(table);
    expect(r.hits).toContain("$.rows[0].object.data.password");
    expect(r.hits).toContain('$.rows[1].object.data["ca.crt"]');
    expectNoSecret(r.value);
  });

  it("a client-side List: the Secret masked, the ConfigMap left alone", () => {
    const list = load("list-mixed.json") as { items: unknown[] };
    const r = maskKubernetesSecrets(list);
    const out = r.value as typeof list;
    expect(out.items[1]).toBe(list.items[1]);
    expect(r.hits).toEqual(["$.items[0].data.password", "$.items[0].data.username", `$.items[0]${annotationPath}`]);
    expectNoSecret(out);
  });

  it("Status, ConfigMaps and anything else come back as the same value", () => {
    for (const name of ["status-not-found.json", "configmap.json"]) {
      const doc = load(name);
      expect(maskKubernetesSecrets(doc)).toEqual({ value: doc, hits: [] });
      expect(maskKubernetesSecrets(doc).value).toBe(doc);
    }
    for (const v of [null, 3, "Secret", [], {}, { kind: "Secret" }, { kind: "Pod", items: [{ data: { a: "b" } }] }])
      expect(maskKubernetesSecrets(v).value).toBe(v);
  });

  it("stringData becomes the column mask; null values stay null; a data field that is not a map is masked whole", () => {
    const r = maskKubernetesSecrets({
      kind: "Secret",
      apiVersion: "v1",
      metadata: { name: "x" },
      data: { a: null, b: "" },
      stringData: { password: "s3cr3t-pass" },
    });
    expect(r.value).toMatchObject({ data: { a: null, b: MASKED_SECRET_DATA }, stringData: { password: COLUMN_MASK } });
    expect(maskKubernetesSecrets({ kind: "Secret", data: "czNjcjN0LXBhc3M=" }).value).toEqual({
      kind: "Secret",
      data: COLUMN_MASK,
    });
  });

  it("finds a Secret nested anywhere (an AdmissionReview, a custom wrapper)", () => {
    const review = {
      kind: "AdmissionReview",
      apiVersion: "admission.k8s.io/v1",
      request: { uid: "u1", object: load("secret.json"), oldObject: null },
    };
    const r = maskKubernetesSecrets(review);
    expect(r.hits).toContain("$.request.object.data.password");
    expectNoSecret(r.value);
  });

  it("a last-applied annotation that holds a Secret, or is not JSON, is masked on any object", () => {
    const pom = (text: string) => ({
      kind: "PartialObjectMetadata",
      apiVersion: "meta.k8s.io/v1",
      metadata: { name: "x", annotations: { [LAST_APPLIED]: text, other: "kept" } },
    });
    const secretText = JSON.stringify({ kind: "Secret", data: { password: "czNjcjN0LXBhc3M=" } });
    expect(maskKubernetesSecrets(pom(secretText)).value).toEqual(pom(COLUMN_MASK));
    expect(maskKubernetesSecrets(pom("{not json")).value).toEqual(pom(COLUMN_MASK));
    const cm = pom(JSON.stringify({ kind: "ConfigMap", data: { a: "b" } }));
    expect(maskKubernetesSecrets(cm).value).toBe(cm);
    // on a secrets request, a metadata-only object's annotation is masked whatever it holds
    expect(maskKubernetesSecrets(cm, { secretsRequest: true }).value).toEqual(pom(COLUMN_MASK));
  });

  it("on a secrets request, a kindless object in a Secret's place is a Secret", () => {
    const bare = { metadata: { name: "x" }, data: { password: "czNjcjN0LXBhc3M=" } };
    expect(maskKubernetesSecrets(bare).value).toBe(bare);
    const masked = { metadata: { name: "x" }, data: { password: MASKED_SECRET_DATA } };
    expect(maskKubernetesSecrets(bare, { secretsRequest: true }).value).toEqual(masked);
    const event = { type: "ADDED", object: bare };
    expect(maskKubernetesSecrets(event, { secretsRequest: true }).value).toEqual({ type: "ADDED", object: masked });
    const table = { kind: "Table", rows: [{ cells: ["x"], object: bare }] };
    expect(maskKubernetesSecrets(table, { secretsRequest: true }).value).toEqual({
      kind: "Table",
      rows: [{ cells: ["x"], object: masked }],
    });
    // a kindless list is walked on, its items still in a Secret's place
    const list = { metadata: {}, items: [bare] };
    expect(maskKubernetesSecrets(list, { secretsRequest: true }).value).toEqual({ metadata: {}, items: [masked] });
    // but not a kindless object nested somewhere else
    const nested = { kind: "Something", spec: { template: bare } };
    expect(maskKubernetesSecrets(nested, { secretsRequest: true }).value).toBe(nested);
  });

  it("refuses a document nested too deep rather than overflowing", () => {
    let deep: unknown = { kind: "Secret", data: { a: "czNjcjN0LXBhc3M=" } };
    for (let i = 0; i < MAX_SECRET_WALK_DEPTH + 5; i++) deep = [deep];
    expect(() => maskKubernetesSecrets(deep)).toThrow(SecretMaskError);
  });

  it("property: no data value of a Secret survives, whatever shape carries it", () => {
    const value = fc.base64String({ minLength: 12, maxLength: 40 }).map((s) => `Zq9${s}`);
    const secret = fc
      .dictionary(fc.string({ minLength: 1, maxLength: 8 }), value, { minKeys: 1, maxKeys: 4 })
      .map((data) => ({ metadata: { name: "s", namespace: "prod" }, type: "Opaque", data }));
    const withKind = (s: object) => ({ kind: "Secret", apiVersion: "v1", ...s });
    const shape = fc.constantFrom(
      (s: object) => withKind(s),
      (s: object) => ({ kind: "SecretList", apiVersion: "v1", metadata: {}, items: [s, s] }),
      (s: object) => ({ kind: "List", apiVersion: "v1", items: [{ kind: "ConfigMap", data: {} }, withKind(s)] }),
      (s: object) => ({ type: "MODIFIED", object: withKind(s) }),
      (s: object) => ({ kind: "Table", apiVersion: "meta.k8s.io/v1", rows: [{ cells: [], object: withKind(s) }] }),
      (s: object) => ({ wrapper: [{ deep: { x: withKind(s) } }] }),
    );
    fc.assert(
      fc.property(secret, shape, (s, wrap) => {
        const text = JSON.stringify(maskKubernetesSecrets(wrap(s)).value);
        for (const v of Object.values(s.data)) expect(text).not.toContain(v);
        expect(text).toContain(MASKED_SECRET_DATA);
      }),
      { numRuns: 300 },
    );
  });
});
