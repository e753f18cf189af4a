/**
 * kubectl 1.33's typed `create` commands (`create namespace|secret|configmap`) send their object as Kubernetes
 * protobuf, with no JSON fallback. This decodes just those kinds: the envelope is the magic "k8s\0" then a
 * runtime.Unknown {1: typeMeta {1: apiVersion, 2: kind}, 2: raw}, where raw is the object's own message. Field
 * numbers are those of k8s.io/api's generated.proto. Any other kind gives undefined (the server then answers 415).
 */
import type { KubeObject, ObjectMeta } from "./resources.js";

const MAGIC = Buffer.from("k8s\0", "latin1");

type Field = { no: number; wire: number; value: bigint | Buffer };

function varint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new Error("truncated varint");
    result |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [result, pos];
    shift += 7n;
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p] = varint(buf, pos);
    pos = p;
    const no = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, q] = varint(buf, pos);
      out.push({ no, wire, value: v });
      pos = q;
    } else if (wire === 2) {
      const [len, q] = varint(buf, pos);
      out.push({ no, wire, value: buf.subarray(q, q + Number(len)) });
      pos = q + Number(len);
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4; // fixed64/fixed32: none of the decoded kinds uses them
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  return out;
}

const bytesOf = (f: Field) => (Buffer.isBuffer(f.value) ? f.value : Buffer.alloc(0));
const text = (f: Field) => bytesOf(f).toString("utf8");

function mapEntry(f: Field): [string, Buffer] {
  const kv = fields(bytesOf(f));
  const k = kv.find((e) => e.no === 1);
  const v = kv.find((e) => e.no === 2);
  return [k ? text(k) : "", v ? bytesOf(v) : Buffer.alloc(0)];
}

function stringMap(fs: Field[], no: number, encode: (b: Buffer) => string): Record<string, string> | undefined {
  const entries = fs.filter((f) => f.no === no).map(mapEntry);
  return entries.length ? Object.fromEntries(entries.map(([k, v]) => [k, encode(v)])) : undefined;
}

const utf8 = (b: Buffer) => b.toString("utf8");
const base64 = (b: Buffer) => b.toString("base64");

function objectMeta(buf: Buffer): ObjectMeta {
  const fs = fields(buf);
  const str = (no: number) => {
    const f = fs.find((e) => e.no === no);
    return f && text(f) ? text(f) : undefined;
  };
  const meta: ObjectMeta = { name: str(1) ?? "" };
  const generateName = str(2);
  const namespace = str(3);
  if (generateName) meta.generateName = generateName;
  if (namespace) meta.namespace = namespace;
  const labels = stringMap(fs, 11, utf8);
  const annotations = stringMap(fs, 12, utf8);
  if (labels) meta.labels = labels;
  if (annotations) meta.annotations = annotations;
  return meta;
}

export function decodeProtobufObject(body: Buffer): KubeObject | undefined {
  if (!body.subarray(0, 4).equals(MAGIC)) return undefined;
  try {
    const unknown = fields(body.subarray(4));
    const typeMeta = fields(bytesOf(unknown.find((f) => f.no === 1) ?? { no: 1, wire: 2, value: Buffer.alloc(0) }));
    const apiVersion = text(typeMeta.find((f) => f.no === 1) ?? { no: 1, wire: 2, value: Buffer.alloc(0) });
    const kind = text(typeMeta.find((f) => f.no === 2) ?? { no: 2, wire: 2, value: Buffer.alloc(0) });
    const raw = unknown.find((f) => f.no === 2);
    if (!raw || apiVersion !== "v1") return undefined;
    const fs = fields(bytesOf(raw));
    const metaField = fs.find((f) => f.no === 1);
    const o: KubeObject = { apiVersion, kind, metadata: metaField ? objectMeta(bytesOf(metaField)) : { name: "" } };
    const bool = (no: number) => fs.some((f) => f.no === no && f.value === 1n);
    if (kind === "Namespace") {
      const spec = fs.find((f) => f.no === 2);
      const finalizers = spec
        ? fields(bytesOf(spec))
            .filter((f) => f.no === 1)
            .map(text)
        : [];
      if (finalizers.length) o.spec = { finalizers };
    } else if (kind === "Secret") {
      const data = stringMap(fs, 2, base64);
      const stringData = stringMap(fs, 4, utf8);
      const type = fs.find((f) => f.no === 3);
      if (data) o.data = data;
      if (stringData) o.stringData = stringData;
      if (type && text(type)) o.type = text(type);
      if (bool(5)) o.immutable = true;
    } else if (kind === "ConfigMap") {
      const data = stringMap(fs, 2, utf8);
      const binaryData = stringMap(fs, 3, base64);
      if (data) o.data = data;
      if (binaryData) o.binaryData = binaryData;
      if (bool(4)) o.immutable = true;
    } else {
      return undefined;
    }
    return o;
  } catch {
    return undefined;
  }
}
