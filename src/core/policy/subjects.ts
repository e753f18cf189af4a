import type { Identity } from "../identity/identity.js";

/**
 * Who an access or approver entry names:
 *   `group:NAME`                 a member of that group
 *   `subject:NAME` / `user:NAME` exactly that subject (JWT `sub` or static token name)
 *   `kind:bot` / `kind:human`    every identity of that kind
 *   `*`                          every authenticated identity
 */
export type SubjectRef =
  | { type: "group"; name: string }
  | { type: "subject"; name: string }
  | { type: "kind"; kind: "bot" | "human" }
  | { type: "any" };

const NAME = /^[^\s,]+$/;

export function parseSubject(text: string): SubjectRef | { error: string } {
  if (text === "*") return { type: "any" };
  const colon = text.indexOf(":");
  const prefix = colon < 0 ? "" : text.slice(0, colon);
  const name = colon < 0 ? "" : text.slice(colon + 1);
  const expected = "expected group:NAME, subject:NAME, user:NAME, kind:bot, kind:human or *";
  if (prefix === "kind") {
    if (name === "bot" || name === "human") return { type: "kind", kind: name };
    return {
      error: `invalid kind ${JSON.stringify(name)} in ${JSON.stringify(text)} (expected kind:bot or kind:human)`,
    };
  }
  if (prefix !== "group" && prefix !== "subject" && prefix !== "user") {
    return { error: `invalid subject ${JSON.stringify(text)} (${expected})` };
  }
  if (!NAME.test(name))
    return { error: `invalid subject ${JSON.stringify(text)}: the name after "${prefix}:" is empty or has spaces` };
  return prefix === "group" ? { type: "group", name } : { type: "subject", name };
}

export function formatSubject(ref: SubjectRef): string {
  switch (ref.type) {
    case "any":
      return "*";
    case "kind":
      return `kind:${ref.kind}`;
    case "group":
      return `group:${ref.name}`;
    case "subject":
      return `subject:${ref.name}`;
  }
}

/** A precompiled subject list: group and subject names in Sets so checks stay O(groups of the identity). */
export class SubjectSet {
  private readonly any: boolean;
  private readonly kinds = new Set<string>();
  private readonly groups = new Set<string>();
  private readonly subjects = new Set<string>();

  constructor(entries: readonly string[]) {
    let any = false;
    for (const entry of entries) {
      const ref = parseSubject(entry);
      if ("error" in ref) throw new Error(ref.error); // the schema has already rejected these
      if (ref.type === "any") any = true;
      else if (ref.type === "kind") this.kinds.add(ref.kind);
      else if (ref.type === "group") this.groups.add(ref.name);
      else this.subjects.add(ref.name);
    }
    this.any = any;
  }

  /** The entry that lets this identity in, for evidence ("access via group:ci"), or undefined. */
  match(identity: Identity): string | undefined {
    if (this.any) return "*";
    if (this.subjects.has(identity.subject)) return `subject:${identity.subject}`;
    if (this.kinds.has(identity.kind)) return `kind:${identity.kind}`;
    for (const g of identity.groups) if (this.groups.has(g)) return `group:${g}`;
    return undefined;
  }

  /** How many distinct people could possibly satisfy this list; Infinity when a group, kind or * is named. */
  get namedSubjectCount(): number {
    return this.any || this.kinds.size > 0 || this.groups.size > 0 ? Infinity : this.subjects.size;
  }
}
