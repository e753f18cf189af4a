/**
 * The parse tree is libpg-query's JSON: every node is `{ TypeName: { ...fields } }`. We read only the few fields we
 * need through these helpers instead of typing the whole tree, so a field PostgreSQL renames shows up as a missing
 * fact in tests rather than as a type error somewhere unrelated.
 */

export type Fields = Readonly<Record<string, unknown>>;

export function asFields(value: unknown): Fields | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Fields) : undefined;
}

export function asList(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

export function asString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * Visits every object in a parse tree (arrays are walked through, not visited), in no particular order. Iterative,
 * because the tree of a legal query can be thousands of levels deep. `visit` returns false to skip an object's
 * children.
 */
export function visitObjects(tree: unknown, visit: (o: Fields) => boolean | void): void {
  const stack: unknown[] = [tree];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const item of v as unknown[]) stack.push(item);
      continue;
    }
    const o = asFields(v);
    if (o && visit(o) !== false) for (const child of Object.values(o)) stack.push(child);
  }
}

/** `{ RangeVar: {...} }` -> ["RangeVar", {...}]; anything that is not a single-key node wrapper -> undefined. */
export function unwrap(value: unknown): [type: string, fields: Fields] | undefined {
  const o = asFields(value);
  if (!o) return undefined;
  const keys = Object.keys(o);
  if (keys.length !== 1) return undefined;
  const type = keys[0] as string;
  const fields = asFields(o[type]);
  return fields && /^[A-Z]/.test(type) ? [type, fields] : undefined;
}

/** The fields of `value` if it is a node of the given type. */
export function nodeOf(value: unknown, type: string): Fields | undefined {
  const n = unwrap(value);
  return n && n[0] === type ? n[1] : undefined;
}

/** `schema.table` as PostgreSQL resolved the spelling: unquoted names arrive folded, quoted ones exact. */
export function rangeVarName(rv: Fields): string | undefined {
  const rel = asString(rv.relname);
  if (rel === undefined) return undefined;
  return [asString(rv.catalogname), asString(rv.schemaname), rel].filter((p) => p !== undefined).join(".");
}

/** A qualified name given as a list of String nodes (DROP TABLE a.b, ...). */
export function nameList(value: unknown): string | undefined {
  const parts = asList(value).map((item) => asString(nodeOf(item, "String")?.sval));
  if (parts.length === 0 || parts.some((p) => p === undefined)) return undefined;
  return parts.join(".");
}
