import type { StatementFact } from "../../policy/facts.js";
import { isStatementNode, statementKind } from "./kinds.js";
import { asFields, asList, asString, nameList, rangeVarName, unwrap, visitObjects, type Fields } from "./node.js";

/**
 * A statement fact under construction; `optional` ones are dropped if they end up touching no table and calling
 * no function. `callsOf`: a fact that stands for the same statement as another (an upsert's update, a MERGE action,
 * COPY's program or file) lists that fact's calls.
 */
export interface FactDraft {
  kind: string;
  tables: string[];
  hasWhere?: boolean;
  /** Created on the first call found: most facts have none, and the walk is on the hot path. */
  functions?: string[];
  optional?: boolean;
  callsOf?: FactDraft;
}

/**
 * Where table references found below a node go, where function calls go, and which bare names are CTEs rather than
 * tables there. `calls` differs from `fact` only below a write or COPY: what it reads is a `select` fact of its own,
 * but the calls in it run as part of the write, so they count for the write.
 */
interface Context {
  fact: FactDraft;
  calls: FactDraft;
  ctes: ReadonlySet<string>;
}

type Item =
  | { stmt: false; value: unknown; ctx: Context }
  | { stmt: true; type: string; fields: Fields; ctx: Context | undefined };

export type StatementVisitor = (type: string, fields: Fields) => void;

const NO_CTES: ReadonlySet<string> = new Set();
const WRITES: ReadonlySet<string> = new Set(["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"]);
/** DROP of these names relations, so their names are tables for `tables` rules. */
const DROPPED_RELATIONS: ReadonlySet<string> = new Set([
  "OBJECT_TABLE",
  "OBJECT_VIEW",
  "OBJECT_MATVIEW",
  "OBJECT_FOREIGN_TABLE",
  "OBJECT_INDEX",
  "OBJECT_SEQUENCE",
]);
const MERGE_ACTIONS: Readonly<Record<string, string>> = {
  CMD_DELETE: "delete",
  CMD_UPDATE: "update",
  CMD_INSERT: "insert",
};

function addTable(fact: FactDraft, name: string | undefined): void {
  if (name !== undefined && !fact.tables.includes(name)) fact.tables.push(name);
}

/** A FuncCall's name as the parser resolved it (`pg_catalog.set_config`, folded unless quoted). */
function addCall(fact: FactDraft, call: Fields): void {
  const name = nameList(call.funcname);
  if (name === undefined) return;
  if (fact.functions === undefined) fact.functions = [name];
  else if (!fact.functions.includes(name)) fact.functions.push(name);
}

/** A RangeVar read in `ctes` scope: a bare name that a WITH clause defines is that CTE, not a table. */
function addRangeVar(fact: FactDraft, rv: Fields, ctes: ReadonlySet<string>): void {
  const rel = asString(rv.relname);
  if (rel !== undefined && rv.schemaname === undefined && rv.catalogname === undefined && ctes.has(rel)) return;
  addTable(fact, rangeVarName(rv));
}

/** Typed (unwrapped) RangeVar fields such as `relation` carry no node wrapper; recognise them by shape. */
function isBareRangeVar(o: Fields): boolean {
  return typeof o.relname === "string" && typeof o.relpersistence === "string";
}

/**
 * A WHERE clause selects rows only if it mentions a column (or is WHERE CURRENT OF). `WHERE true`, `WHERE 1=1` or
 * `WHERE $1` cannot tell rows apart, so they count as no WHERE: a without_where rule is about "all rows".
 */
export function whereSelectsRows(where: unknown): boolean {
  let selects = false;
  visitObjects(where, (o) => {
    if ("ColumnRef" in o || "CurrentOfExpr" in o) selects = true;
    return !selects;
  });
  return selects;
}

/**
 * Facts for one top-level statement: one per statement node anywhere in its tree (CTE bodies, sub-selects, PREPARE
 * and EXPLAIN bodies, rule actions, SQL function bodies), each with the tables it touches and the functions it
 * calls (FuncCall nodes). Nested SELECTs fold into an enclosing SELECT (reads are reads); what a write only reads
 * becomes a separate `select` fact so that a rule on `delete ... tables: [t]` is about the deleted table and a rule
 * on `select ... tables: [t]` still sees every read. Calls count for the statement that runs them: a folded SELECT's
 * for the statement it is part of (the enclosing SELECT, write or COPY). Iterative, because the tree of a legal
 * query can be thousands of levels deep.
 */
export function collectFacts(type: string, fields: Fields, visit?: StatementVisitor): StatementFact[] {
  const out: FactDraft[] = [];
  const stack: Item[] = [{ stmt: true, type, fields, ctx: undefined }];
  // children are pushed in reverse so that facts come out in the order they are written
  const pushAll = (items: Item[]) => {
    for (let i = items.length - 1; i >= 0; i--) stack.push(items[i] as Item);
  };

  while (stack.length > 0) {
    const item = stack.pop() as Item;
    if (item.stmt) pushAll(visitStatement(item.type, item.fields, item.ctx, out, visit));
    else pushAll(visitValue(item.value, item.ctx));
  }
  const facts: StatementFact[] = [];
  for (const f of out) {
    const functions = (f.callsOf ?? f).functions;
    if (f.optional === true && f.tables.length === 0 && functions === undefined) continue;
    const fact: StatementFact = { kind: f.kind, tables: f.tables };
    if (f.hasWhere !== undefined) fact.hasWhere = f.hasWhere;
    if (functions !== undefined) fact.functions = functions;
    facts.push(fact);
  }
  return facts;
}

function visitValue(value: unknown, ctx: Context): Item[] {
  if (Array.isArray(value)) return value.map((v: unknown) => ({ stmt: false, value: v, ctx }));
  const o = asFields(value);
  if (!o) return [];
  const node = unwrap(o);
  if (node) {
    const [type, fields] = node;
    if (isStatementNode(type)) return [{ stmt: true, type, fields, ctx }];
    if (type === "RangeVar") {
      addRangeVar(ctx.fact, fields, ctx.ctes);
      return [];
    }
    // the name is a list of String nodes, nothing to walk; the arguments, FILTER and OVER may call more
    if (type === "FuncCall") addCall(ctx.calls, fields);
    return [{ stmt: false, value: fields, ctx }];
  }
  if (isBareRangeVar(o)) {
    addRangeVar(ctx.fact, o, ctx.ctes);
    return [];
  }
  return Object.values(o).map((v) => ({ stmt: false, value: v, ctx }));
}

function visitStatement(
  type: string,
  fields: Fields,
  parent: Context | undefined,
  out: FactDraft[],
  visit: StatementVisitor | undefined,
): Item[] {
  visit?.(type, fields);
  const outer = parent?.ctes ?? NO_CTES;
  const kind = statementKind(type, fields);

  if (type === "SelectStmt" && kind === "create_table") {
    // SELECT ... INTO t: creating t is one fact, the query it runs another
    const create: FactDraft = { kind, tables: [] };
    out.push(create);
    addTable(create, rangeVarName(asFields(asFields(fields.intoClause)?.rel) ?? {}));
    const { intoClause: _, ...query } = fields;
    return [{ stmt: true, type, fields: query, ctx: { fact: create, calls: create, ctes: outer } }];
  }

  let fact: FactDraft;
  let calls: FactDraft;
  if (kind === "select" && parent?.fact.kind === "select") {
    fact = parent.fact;
    calls = parent.calls;
  } else {
    fact = { kind, tables: [] };
    calls = fact;
    out.push(fact);
  }

  const skip = new Set<string>(["withClause"]);
  const items: Item[] = [];
  let childFact = fact;

  if (WRITES.has(type)) {
    const target = asFields(fields.relation);
    // DML targets are always real tables: a CTE of the same name does not shadow them
    if (target) addTable(fact, rangeVarName(target));
    skip.add("relation");
    if (kind === "update" || kind === "delete") fact.hasWhere = whereSelectsRows(fields.whereClause);
    for (const extra of writeSideEffects(type, fields)) {
      const f: FactDraft = { kind: extra.kind, tables: [...fact.tables], callsOf: fact };
      if (extra.hasWhere !== undefined) f.hasWhere = extra.hasWhere;
      out.push(f);
    }
    childFact = { kind: "select", tables: [], optional: true };
    out.push(childFact);
  } else if (type === "CopyStmt") {
    childFact = copyFacts(fields, fact, out);
  } else if (type === "DropStmt" && DROPPED_RELATIONS.has(asString(fields.removeType) ?? "")) {
    for (const obj of asList(fields.objects)) addTable(fact, nameList(asFields(asFields(obj)?.List)?.items));
  } else if (type === "SelectStmt") {
    // set operations keep their arms in typed fields without a node wrapper
    for (const arm of ["larg", "rarg"]) {
      const armFields = asFields(fields[arm]);
      skip.add(arm);
      if (armFields)
        items.push({ stmt: true, type: "SelectStmt", fields: armFields, ctx: { fact, calls, ctes: outer } });
    }
  } else if (type === "AlterDefaultPrivilegesStmt") {
    const action = asFields(fields.action);
    skip.add("action");
    if (action) items.push({ stmt: true, type: "GrantStmt", fields: action, ctx: { fact, calls, ctes: outer } });
  } else if (type === "CallStmt") {
    // the procedure is a typed field without a node wrapper: the walk below would not know it for a FuncCall
    const call = asFields(fields.funccall);
    if (call) addCall(fact, call);
  }

  const withClause = asFields(fields.withClause);
  const ctes = withClause ? cteItems(withClause, outer, { fact: childFact, calls, ctes: outer }, items) : outer;
  const ctx: Context = { fact: childFact, calls, ctes };
  for (const [key, value] of Object.entries(fields)) {
    if (!skip.has(key)) items.push({ stmt: false, value, ctx });
  }
  return items;
}

/** Rows an INSERT ... ON CONFLICT DO UPDATE or a MERGE action changes besides (or instead of) the statement's own. */
function writeSideEffects(type: string, fields: Fields): { kind: string; hasWhere?: boolean }[] {
  if (type === "InsertStmt") {
    // an upsert updates only the conflicting row: that is a targeted update
    return asFields(fields.onConflictClause)?.action === "ONCONFLICT_UPDATE"
      ? [{ kind: "update", hasWhere: true }]
      : [];
  }
  if (type !== "MergeStmt") return [];
  const kinds = new Set<string>();
  for (const clause of asList(fields.mergeWhenClauses)) {
    const action = MERGE_ACTIONS[asString(unwrap(clause)?.[1].commandType) ?? ""];
    if (action !== undefined) kinds.add(action);
  }
  // MERGE picks rows by a join, not a WHERE; the analyzer cannot judge a join, so it counts as none (fail closed)
  return [...kinds].map((kind) => (kind === "insert" ? { kind } : { kind, hasWhere: false }));
}

/**
 * COPY t FROM writes t (an `insert` fact too), COPY t TO reads it (`select`); PROGRAM runs a shell command on the
 * database server and a file name reads or writes a server file, which get `copy_program` / `copy_file` facts.
 * Returns the fact that tables of a COPY (query) go to.
 */
function copyFacts(fields: Fields, copy: FactDraft, out: FactDraft[]): FactDraft {
  const relation = asFields(fields.relation);
  const table = relation ? rangeVarName(relation) : undefined;
  addTable(copy, table);
  const isFrom = fields.is_from === true;
  const data: FactDraft = { kind: isFrom ? "insert" : "select", tables: [], optional: !relation };
  addTable(data, table);
  out.push(data);
  const server =
    fields.is_program === true ? "copy_program" : asString(fields.filename) !== undefined ? "copy_file" : "";
  if (server) out.push({ kind: server, tables: [...copy.tables], callsOf: copy });
  return data;
}

/**
 * Pushes the CTE bodies of a WITH clause and returns the names visible in the statement's main body. A body sees
 * the CTEs before it (all of them under RECURSIVE); a bare name it uses that no visible CTE defines is a table.
 */
function cteItems(withClause: Fields, outer: ReadonlySet<string>, body: Context, items: Item[]): ReadonlySet<string> {
  const ctes = asList(withClause.ctes).flatMap((c) => {
    const node = unwrap(c);
    return node && node[0] === "CommonTableExpr" ? [node[1]] : [];
  });
  const names = ctes.map((c) => asString(c.ctename) ?? "");
  const all = new Set([...outer, ...names]);
  ctes.forEach((cte, i) => {
    const visible = withClause.recursive === true ? all : new Set([...outer, ...names.slice(0, i)]);
    items.push({ stmt: false, value: cte.ctequery, ctx: { ...body, ctes: visible } });
  });
  return all;
}
