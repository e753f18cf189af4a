/**
 * In-memory objects with one resourceVersion counter, like etcd's revision: every change gets the next number and
 * is kept as an event, so a watch from resourceVersion N replays exactly the changes after N (kubectl get -w lists,
 * then watches from the list's resourceVersion).
 */
import { randomUUID } from "node:crypto";
import type { KubeObject } from "./resources.js";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  type: WatchEventType;
  resource: string;
  object: KubeObject;
  resourceVersion: number;
}

export class Store {
  private revision = 1;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: StoreEvent[] = [];
  private readonly listeners = new Set<(e: StoreEvent) => void>();

  get resourceVersion(): string {
    return String(this.revision);
  }

  private bucket(resource: string): Map<string, KubeObject> {
    let b = this.objects.get(resource);
    if (!b) this.objects.set(resource, (b = new Map()));
    return b;
  }

  list(resource: string, namespace?: string): KubeObject[] {
    const all = [...this.bucket(resource).values()];
    return (namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace)).map(clone);
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.bucket(resource).get(key(namespace, name));
    return o && clone(o);
  }

  /** Stores a new object, filling uid, resourceVersion and creationTimestamp; undefined if the name is taken. */
  create(resource: string, object: KubeObject): KubeObject | undefined {
    const k = key(object.metadata.namespace, object.metadata.name);
    if (this.bucket(resource).has(k)) return undefined;
    const stored = clone(object);
    stored.metadata.uid = randomUUID();
    stored.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    return this.commit("ADDED", resource, stored);
  }

  /** Replaces an existing object (keeping its uid and creationTimestamp); undefined if there is none. */
  update(resource: string, object: KubeObject): KubeObject | undefined {
    const old = this.bucket(resource).get(key(object.metadata.namespace, object.metadata.name));
    if (!old) return undefined;
    const stored = clone(object);
    stored.metadata.uid = old.metadata.uid;
    stored.metadata.creationTimestamp = old.metadata.creationTimestamp;
    return this.commit("MODIFIED", resource, stored);
  }

  delete(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const old = this.bucket(resource).get(key(namespace, name));
    if (!old) return undefined;
    return this.commit("DELETED", resource, clone(old));
  }

  private commit(type: WatchEventType, resource: string, object: KubeObject): KubeObject {
    this.revision += 1;
    object.metadata.resourceVersion = String(this.revision);
    const k = key(object.metadata.namespace, object.metadata.name);
    if (type === "DELETED") this.bucket(resource).delete(k);
    else this.bucket(resource).set(k, object);
    const event: StoreEvent = { type, resource, object: clone(object), resourceVersion: this.revision };
    this.history.push(event);
    for (const l of this.listeners) l(event);
    return clone(object);
  }

  /** Changes after resourceVersion `after`, oldest first. */
  eventsSince(after: number): StoreEvent[] {
    return this.history.filter((e) => e.resourceVersion > after);
  }

  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const key = (namespace: string | undefined, name: string) => `${namespace ?? ""}/${name}`;
const clone = <T>(o: T): T => structuredClone(o);
