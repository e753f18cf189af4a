import type { ColumnResolver, SourceColumn } from "./result-mask.js";
import type { SideQueryConnection } from "./side-query.js";

/** Marks the gateway's own catalog statements in the target's log (they are not client requests). */
export const CATALOG_MARKER = "/* gatehouse: catalog lookup for masking */";

interface Relation {
  schema: string;
  name: string;
  /** attnum -> name */
  columns: Map<number, string>;
  /** For views and materialized views: view attnum -> its own origins (resorigtbl, resorigcol). */
  viewOrigins?: Map<number, { tableOid: number; attnum: number }>;
}

const MAX_VIEW_DEPTH = 8;

/**
 * Resolves (table OID, attnum) pairs from RowDescription to schema.table.column through the target's catalog,
 * cached per session. A view column is followed to the column it selects: PostgreSQL stores the view's query
 * tree in pg_rewrite with each target entry's origin (resorigtbl/resorigcol), so renamed and nested view
 * columns still resolve to their base table. Every hop is returned, so a rule may name the view or the table.
 */
export class CatalogResolver implements ColumnResolver {
  readonly #relations = new Map<number, Relation | null>();

  constructor(private readonly side: () => Promise<SideQueryConnection>) {}

  resolve(origins: readonly { tableOid: number; attnum: number }[]): SourceColumn[][] | Promise<SourceColumn[][]> {
    const missing = origins.filter((o) => o.tableOid !== 0 && !this.#relations.has(o.tableOid)).map((o) => o.tableOid);
    if (missing.length === 0) return origins.map((o) => this.#chain(o.tableOid, o.attnum, 0));
    return this.#load(missing).then(() => this.resolve(origins));
  }

  #chain(tableOid: number, attnum: number, depth: number): SourceColumn[] {
    const rel = this.#relations.get(tableOid);
    if (!rel || attnum <= 0) return [];
    const column = rel.columns.get(attnum);
    const here = column ? [{ schema: rel.schema, table: rel.name, column }] : [];
    const origin = rel.viewOrigins?.get(attnum);
    if (!origin || depth >= MAX_VIEW_DEPTH) return here;
    // an unknown relation behind a view was loaded with it (see #load), so this stays synchronous
    return [...here, ...this.#chain(origin.tableOid, origin.attnum, depth + 1)];
  }

  async #load(oids: number[]): Promise<void> {
    let pending = [...new Set(oids)];
    for (let depth = 0; pending.length > 0 && depth <= MAX_VIEW_DEPTH; depth++) {
      const side = await this.side();
      const list = pending.filter((o) => Number.isInteger(o) && o > 0).join(",");
      const rows = await side.query(
        `${CATALOG_MARKER} SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname, ` +
          `CASE WHEN c.relkind IN ('v','m') THEN (SELECT r.ev_action::text FROM pg_rewrite r ` +
          `WHERE r.ev_class = c.oid AND r.rulename = '_RETURN') END ` +
          `FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ` +
          `JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ` +
          `WHERE c.oid = ANY('{${list}}'::oid[])`,
      );
      for (const oid of pending) this.#relations.set(oid, null);
      const next: number[] = [];
      for (const [oid, schema, relname, attnum, attname, action] of rows) {
        const key = Number(oid);
        let rel = this.#relations.get(key);
        if (!rel) {
          rel = { schema: schema ?? "", name: relname ?? "", columns: new Map() };
          if (action) {
            rel.viewOrigins = viewOrigins(action);
            for (const o of rel.viewOrigins.values()) if (!this.#relations.has(o.tableOid)) next.push(o.tableOid);
          }
          this.#relations.set(key, rel);
        }
        rel.columns.set(Number(attnum), attname ?? "");
      }
      pending = [...new Set(next)].filter((o) => o !== 0 && !this.#relations.has(o));
    }
  }
}

/**
 * Origins of a view's output columns from its stored query tree (nodeToString text `({QUERY ... :targetList
 * ({TARGETENTRY ... :resno N ... :resorigtbl T :resorigcol C ...} ...) ...})`). Only the top-level query's target
 * list counts: nesting depth is tracked (backslash-escaped characters skipped) so the target lists of subqueries
 * in FROM or in expressions are never mistaken for it.
 */
export function viewOrigins(action: string): Map<number, { tableOid: number; attnum: number }> {
  const out = new Map<number, { tableOid: number; attnum: number }>();
  const entry = /:resno (\d+) :resname \S+ :ressortgroupref \d+ :resorigtbl (\d+) :resorigcol (\d+)/y;
  let depth = 0;
  let inTargetList = false;
  for (let i = 0; i < action.length; i++) {
    const ch = action[i];
    if (ch === "\\") {
      i++;
      continue;
    }
    if (ch === "(" || ch === "{") depth++;
    else if (ch === ")" || ch === "}") {
      depth--;
      if (inTargetList && depth < 3) return out;
    } else if (ch === ":") {
      if (depth === 2 && action.startsWith(":targetList ", i)) inTargetList = true;
      else if (inTargetList && depth === 4 && action.startsWith(":resno ", i)) {
        entry.lastIndex = i;
        const m = entry.exec(action);
        if (m) out.set(Number(m[1]), { tableOid: Number(m[2]), attnum: Number(m[3]) });
      }
    }
  }
  return out;
}
