import type { RequestFacts } from "../../core/policy/facts.js";
import type { GateRequest } from "../../core/session/gate.js";
import type { BindRecord } from "./params.js";
import {
  planPrepared,
  PreparedStatements,
  type PlannedChange,
  type PreparedEntry,
  type PreparedPlan,
} from "./prepared-statements.js";
import type { OwnRefusal } from "./refusals.js";
import type { Read, TargetWait } from "./sql-reading.js";

/** What running a parsed statement does to the session's prepared statements; kept only for those that do. */
interface StatementRun {
  /** Names its text EXECUTEs, and the generation they were judged at: it may not run once one of them changed. */
  executes?: { names: string[]; at: number };
  /** What each run changes (its text PREPAREs or DEALLOCATEs, or EXECUTEs a statement that does). */
  changes: PlannedChange[];
  /** The target may read its text otherwise: each run makes the gateway forget every prepared statement. */
  doubtful: boolean;
}

/** A bound portal: the text evidence shows for it, and what running it does to prepared statements. */
export interface Portal {
  text: string;
  params?: unknown[];
  run?: StatementRun;
}

/** The relay's outcome callback for a forwarded message (how many of its statements completed). */
export type Settled = (completed: number) => void;

/** The plan of a request that touches no prepared statement (most of them). */
export const NO_PLAN: PreparedPlan = Object.freeze({ facts: [], executed: [], described: "", changes: [] });

/**
 * The extended-protocol planner: which statement a portal runs, what a request's EXECUTEs run and what it changes
 * in the session's prepared statements (prepared-statements.ts holds them as the target does), and whether an
 * Execute still runs the body it was judged on. The dispatcher asks it and forwards; it never writes to a socket.
 */
export class StatementPlanner {
  /** Parsed statements' texts as evidence shows them, for the bind and result events. */
  readonly #statements = new Map<string, string>();
  /** Parsed statements that EXECUTE, PREPARE or DEALLOCATE: what each run of them does. */
  readonly #runs = new Map<string, StatementRun>();
  readonly #portals = new Map<string, Portal>();
  /** The session's prepared statements, as the target holds them (SQL PREPARE and named Parse). */
  readonly #prepared = new PreparedStatements();
  readonly #wait: TargetWait;
  /**
   * Requests in one unit run only while the ones before them succeed: a Query string stops at its first error, an
   * extended-protocol batch skips to Sync. A Query, a function call and a Sync end a unit.
   */
  #unit = 0;

  constructor(wait: TargetWait) {
    this.#wait = wait;
  }

  get unit(): number {
    return this.#unit;
  }

  endUnit(): void {
    this.#unit++;
  }

  /**
   * What the request's EXECUTEs run and what it changes in the session's prepared statements (see
   * prepared-statements.ts), or undefined if the session closed meanwhile. A name whose last change belongs to an
   * earlier request the target has not answered yet waits for that answer; where waiting cannot settle it (COPY
   * data expected, a batch being skipped to Sync) the name is unknown. Only for a text that namesPrepared().
   */
  async plan(read: Read, unit: number): Promise<PreparedPlan | undefined> {
    const statements = read.analysis.statements;
    const prepared = this.#prepared;
    const text = (i: number) => read.analysis.redacted ?? statements[i]?.text ?? "";
    const first = planPrepared(statements, (n) => prepared.lookup(n, unit), text, prepared.unknownMayChange);
    if (first !== "wait") return first;
    await this.#wait.settled();
    if (this.#wait.closed) return undefined;
    const lookup = (n: string) => {
      const found = prepared.lookup(n, unit);
      return found.state === "wait" ? ({ state: "unknown" } as const) : found;
    };
    return planPrepared(statements, lookup, text, prepared.unknownMayChange) as PreparedPlan;
  }

  /**
   * The request was forwarded: its changes to prepared statements are proposed, to count once the target carried
   * them out (the returned callback, for the relay); a text the target may read otherwise makes the gateway forget
   * them all instead.
   */
  carryOut(doubtful: boolean, changes: readonly PlannedChange[], unit: number): Settled | undefined {
    const prepared = this.#prepared;
    if (doubtful) {
      prepared.forget();
      return undefined;
    }
    if (changes.length === 0) return undefined;
    const proposed: { statement: number; settle: (applied: boolean) => void }[] = [];
    for (const { statement, change } of changes) {
      if (change === "forget") prepared.forget();
      else proposed.push({ statement, settle: prepared.propose(change, unit) });
    }
    return (completed) => {
      for (const p of proposed) p.settle(p.statement <= completed);
    };
  }

  /**
   * A Parse was admitted and is forwarded: its statement is remembered for the bind and result evidence (the
   * redacted text, never the secret) and, when named, for SQL `EXECUTE name` too (what that runs is what this Parse
   * was decided on). Returns the relay's callback for that change.
   */
  parsed(name: string, shown: string, request: GateRequest, read: Read, plan: PreparedPlan, unit: number) {
    this.#statements.set(name, shown);
    const settled =
      name === ""
        ? undefined
        : outcomeOf(this.#prepared.propose({ op: "set", name, entry: parsedEntry(shown, request, read, plan) }, unit));
    if (plan !== NO_PLAN || read.doubtful) this.#runs.set(name, this.#runOf(read, plan));
    else this.#runs.delete(name);
    return settled;
  }

  /** A Parse was refused: nothing of the name's earlier statement is kept (the target has none either). */
  forgetStatement(name: string): void {
    this.#statements.delete(name);
    this.#runs.delete(name);
  }

  /** Close of a statement: a named one is proposed deleted (the returned callback, for the relay). */
  closeStatement(name: string): Settled | undefined {
    this.forgetStatement(name);
    return name !== "" ? outcomeOf(this.#prepared.propose({ op: "delete", name }, this.#unit)) : undefined;
  }

  closePortal(name: string): void {
    this.#portals.delete(name);
  }

  /** Bind: the portal runs the bound statement. Returns the statement's text as evidence shows it. */
  bound(bind: BindRecord): string {
    const text = this.#statements.get(bind.statement) ?? "";
    const run = this.#runs.get(bind.statement);
    this.#portals.set(bind.portal, { text, params: bind.params, ...(run ? { run } : {}) });
    return text;
  }

  portal(name: string): Portal | undefined {
    return this.#portals.get(name);
  }

  /**
   * Why the portal may not run: its statement EXECUTEs a prepared statement that changed since it was judged at its
   * Parse, so it would run another body now. Undefined when it may.
   */
  changedSinceParse(portal: Portal | undefined): OwnRefusal | undefined {
    const run = portal?.run;
    if (!run?.executes || !this.#prepared.changedSince(run.executes.names, run.executes.at)) return undefined;
    const names = run.executes.names.map((n) => JSON.stringify(n)).join(", ");
    return {
      reason: `prepared statement ${names} changed after this statement was checked at its Parse`,
      hint: "parse the statement again",
    };
  }

  /** Execute of the portal is forwarded: each run of a statement that changes prepared statements proposes that. */
  executed(portal: Portal | undefined): Settled | undefined {
    const run = portal?.run;
    return run ? this.carryOut(run.doubtful, run.changes, this.#unit) : undefined;
  }

  #runOf(read: Read, plan: PreparedPlan): StatementRun {
    const names = read.analysis.statements.flatMap((s) => s.executes ?? []);
    return {
      ...(names.length > 0 ? { executes: { names, at: this.#prepared.generation } } : {}),
      changes: plan.changes,
      doubtful: read.doubtful,
    };
  }
}

/** The text EXECUTEs, PREPAREs or DEALLOCATEs: its plan needs the session's prepared statements. */
export function namesPrepared(read: Read): boolean {
  return read.analysis.statements.some((s) => s.executes || s.prepare || s.deallocate);
}

/** A request's facts with those of the bodies it EXECUTEs; unparseable when one of them cannot be judged. */
export function withExecuted(facts: RequestFacts, plan: PreparedPlan): RequestFacts {
  if (plan.facts.length === 0 && plan.doubt === undefined) return facts;
  const merged: RequestFacts = { ...facts, statements: [...facts.statements, ...plan.facts] };
  if (plan.doubt !== undefined && merged.unparseable === undefined) merged.unparseable = { reason: plan.doubt };
  return merged;
}

/** The relay's outcome callback for one proposed change: applied when the message completed. */
function outcomeOf(settle: (applied: boolean) => void): Settled {
  return (completed) => settle(completed > 0);
}

/**
 * What SQL `EXECUTE name` of a named Parse runs: the statement as it was decided. Its text EXECUTEing another
 * prepared statement is not followed (that one may change meanwhile), and a statement that PREPAREs, DEALLOCATEs,
 * EXECUTEs or may be read otherwise changes prepared statements when run.
 */
function parsedEntry(shown: string, request: GateRequest, read: Read, plan: PreparedPlan): PreparedEntry {
  const doubt =
    request.facts.unparseable?.reason ??
    (plan.executed.length > 0
      ? "it EXECUTEs a prepared statement itself, which the gateway does not follow"
      : undefined);
  const changes = read.doubtful || plan.changes.length > 0 || plan.executed.length > 0;
  return {
    text: shown,
    facts: request.facts.statements,
    ...(doubt !== undefined ? { doubt } : {}),
    ...(changes ? { changes } : {}),
  };
}
