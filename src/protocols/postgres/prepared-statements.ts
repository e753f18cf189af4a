import type { StatementFact } from "../../core/policy/facts.js";

/**
 * The session's prepared statements as the target holds them, so that `EXECUTE name` is judged by what it runs.
 *
 * SQL `PREPARE name AS ...` and a named Parse message both create one (they share the server's namespace, so SQL
 * can EXECUTE a statement a driver prepared over the protocol); `DEALLOCATE name`, a Close of a named statement,
 * `DEALLOCATE ALL` and `DISCARD ALL` remove them. What the gateway knows must never be another body than the one the
 * target holds under that name, whatever the target does with each request. So a change counts only once the target
 * carried it out (PostgreSQL 15, checked end to end):
 *
 * - PREPARE and DEALLOCATE are not transactional: a ROLLBACK undoes neither, and a PREPARE that completed in a
 *   multi-statement query stays when a later statement fails. Inside a failed transaction they fail (25P02).
 * - A PREPARE fails when the name exists (42P05, the old statement stays) or its body does not plan; nothing is
 *   created then. DISCARD ALL fails inside a transaction block.
 *
 * Each change is therefore proposed when its message is forwarded and applied only when the relay reports that the
 * statement completed (`propose` returns the callback). Until then, a later request in the same *unit* may assume
 * it did: within one Query string, or one extended-protocol batch up to Sync, the target runs nothing after an
 * error. A request of a later unit waits for the outcome (`lookup` answers `wait`). A name nobody saw prepared is
 * `unknown`: never guessed.
 *
 * Bounded: at most `limits.entries` statements and `limits.chars` characters of text per session, least recently
 * used first out. A statement that falls out is unknown from then on; since a change counts only when the target
 * carried it out, a later PREPARE of that name (which the target refuses: the name still exists) cannot make the
 * gateway believe in a body the target does not have.
 */

/**
 * What PostgreSQL keys a prepared statement by: its first 63 bytes (NAMEDATALEN - 1), for SQL names (which the
 * parser already cut at a character boundary) and protocol names (which it does not cut) alike.
 */
export function preparedKey(name: string): string {
  if (name.length <= 21 || Buffer.byteLength(name) <= 63) return name;
  const bytes = Buffer.from(name, "utf8").subarray(0, 63);
  const text = bytes.toString("utf8");
  // cut inside a character: no name of 63 bytes or less has that key, so it gets one no such name can spell
  return Buffer.byteLength(text) === 63 ? text : `\0${bytes.toString("latin1")}`;
}

export interface PreparedEntry {
  /** The statement's text as evidence shows it: the PREPARE (or its request, redacted), or a named Parse's text. */
  readonly text: string;
  /** What an EXECUTE of it runs. */
  readonly facts: readonly StatementFact[];
  /** Why the gateway cannot vouch for `facts`: an EXECUTE of it is unparseable with this reason. */
  readonly doubt?: string;
  /**
   * Running it can change the prepared statements itself (a protocol-level statement whose text PREPAREs,
   * DEALLOCATEs, EXECUTEs, or that the target may read otherwise): once it ran, the gateway forgets them all.
   */
  readonly changes?: boolean;
}

export type PreparedChange =
  | { op: "set"; name: string; entry: PreparedEntry }
  | { op: "delete"; name: string }
  /** DEALLOCATE ALL, DISCARD ALL: the target dropped them all. */
  | { op: "clear" };

export type Lookup = { state: "known"; entry: PreparedEntry } | { state: "unknown" } | { state: "wait" };

interface Pending {
  change: PreparedChange | { op: "forget" };
  unit: number;
  state: "sent" | "applied" | "failed";
}

export interface PreparedLimits {
  entries: number;
  chars: number;
}

export const DEFAULT_PREPARED_LIMITS: PreparedLimits = { entries: 1000, chars: 1024 * 1024 };

export class PreparedStatements {
  /** Confirmed statements by key, least recently used first. */
  readonly #known = new Map<string, PreparedEntry>();
  #chars = 0;
  /** Forwarded changes whose outcome is not folded in yet, in the order the target will carry them out. */
  readonly #pending: Pending[] = [];
  #generation = 0;
  /** Generation at which each key last changed, and at which everything last did (clear, forget). */
  readonly #changedAt = new Map<string, number>();
  #clearedAt = 0;
  /**
   * A statement that changes prepared statements when run may still exist on the target while the gateway no
   * longer knows it (forgotten, or out of the bound): running an unknown statement then forgets everything too.
   */
  #lostChanger = false;

  constructor(readonly limits: PreparedLimits = DEFAULT_PREPARED_LIMITS) {}

  /** Statements known (confirmed by the target), for tests. */
  get size(): number {
    return this.#known.size;
  }

  /** Whether an unknown statement that runs may have changed prepared statements (see #lostChanger). */
  get unknownMayChange(): boolean {
    return this.#lostChanger;
  }

  /**
   * A message that makes `change` if the target carries it out is being forwarded as part of `unit`. Call the
   * returned function with the outcome once the target answered (or skipped it: false).
   */
  propose(change: PreparedChange, unit: number): (applied: boolean) => void {
    return this.#push(change, unit);
  }

  /**
   * From now on the gateway knows no prepared statement: something ran that may have changed them in a way it
   * did not read. What the target may still hold under those names is unknown, not gone.
   */
  forget(): void {
    this.#push({ op: "forget" }, -1)(true);
  }

  /**
   * Whether a statement checked at generation `since` that EXECUTEs `names` could now run something else: one of
   * them changed (or everything did) since.
   */
  changedSince(names: readonly string[], since: number): boolean {
    if (this.#clearedAt > since) return true;
    return names.some((n) => (this.#changedAt.get(preparedKey(n)) ?? 0) > since);
  }

  /** Increases with every proposed change: what `changedSince` compares with. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * What `name` is for a request of `unit`: changes of the same unit count as carried out (if one fails, the
   * request never runs), earlier units' changes still in flight mean `wait`.
   */
  lookup(name: string, unit: number): Lookup {
    const key = preparedKey(name);
    let entry = this.#known.get(key);
    let fromPending = false;
    for (const p of this.#pending) {
      const c = p.change;
      if ((c.op === "set" || c.op === "delete") && preparedKey(c.name) !== key) continue;
      if (p.state === "failed") continue;
      if (p.state === "sent" && p.unit !== unit) return { state: "wait" };
      entry = c.op === "set" ? c.entry : undefined;
      fromPending = true;
    }
    if (entry === undefined) return { state: "unknown" };
    if (!fromPending) this.#touch(key, entry);
    return { state: "known", entry };
  }

  #push(change: Pending["change"], unit: number): (applied: boolean) => void {
    const p: Pending = { change, unit, state: "sent" };
    this.#pending.push(p);
    const gen = ++this.#generation;
    if (change.op === "set" || change.op === "delete") this.#markChanged(preparedKey(change.name), gen);
    else this.#clearedAt = gen;
    return (applied) => {
      if (p.state !== "sent") return;
      p.state = applied ? "applied" : "failed";
      this.#fold();
    };
  }

  #markChanged(key: string, gen: number): void {
    this.#changedAt.set(key, gen);
    if (this.#changedAt.size > this.limits.entries * 2) {
      // too many names to remember one by one: count it as a change of everything (compared conservatively)
      this.#changedAt.clear();
      this.#clearedAt = gen;
    }
  }

  /** Applies the changes at the front whose outcome is known, in order. */
  #fold(): void {
    const pending = this.#pending;
    while (pending.length > 0 && (pending[0] as Pending).state !== "sent") {
      const p = pending.shift() as Pending;
      if (p.state === "applied") this.#apply(p.change);
    }
  }

  #apply(change: Pending["change"]): void {
    switch (change.op) {
      case "set": {
        const key = preparedKey(change.name);
        this.#remove(key);
        const size = change.entry.text.length + key.length;
        if (size > this.limits.chars / 8) {
          // too big to keep: the name is unknown from now on
          if (change.entry.changes === true) this.#lostChanger = true;
          return;
        }
        this.#known.set(key, change.entry);
        this.#chars += size;
        this.#evict();
        return;
      }
      case "delete":
        this.#remove(preparedKey(change.name));
        return;
      case "clear":
        this.#known.clear();
        this.#chars = 0;
        return;
      case "forget":
        for (const e of this.#known.values()) if (e.changes === true) this.#lostChanger = true;
        this.#known.clear();
        this.#chars = 0;
        return;
    }
  }

  #remove(key: string): void {
    const old = this.#known.get(key);
    if (old === undefined) return;
    this.#known.delete(key);
    this.#chars -= old.text.length + key.length;
  }

  #evict(): void {
    while (this.#known.size > this.limits.entries || this.#chars > this.limits.chars) {
      const oldest = this.#known.entries().next();
      if (oldest.done === true) return;
      const [key, entry] = oldest.value;
      if (entry.changes === true) this.#lostChanger = true;
      this.#remove(key);
    }
  }

  #touch(key: string, entry: PreparedEntry): void {
    this.#known.delete(key);
    this.#known.set(key, entry);
  }
}

/** What a statement of a request does with prepared statements (the analyzer's AnalyzedStatement has these). */
export interface PreparedEffects {
  prepare?: { name: string; facts: readonly StatementFact[] };
  deallocate?: { name: string } | { all: true };
  executes?: readonly string[];
}

/** What one EXECUTE ran, for evidence: the kinds, tables and functions of the body, or why there are none. */
export interface ExecutedStatement {
  name: string;
  kinds?: string[];
  tables?: string[];
  functions?: string[];
  /** The gateway does not know the statement: the request is unparseable. */
  unknown?: true;
  /** An earlier statement of the same request removed it: this EXECUTE fails and runs nothing. */
  absent?: true;
}

/** A change a request makes if its statement (1-based position) completes; `forget` counts as soon as it runs. */
export type PlannedChange = { statement: number; change: PreparedChange | "forget" };

export interface PreparedPlan {
  /** The facts of every body the request EXECUTEs, for its decision (with its own facts). */
  facts: StatementFact[];
  /** Why an EXECUTE of it cannot be judged (an unknown name, a body the gateway could not read): unparseable. */
  doubt?: string;
  executed: ExecutedStatement[];
  /**
   * One line per EXECUTE naming the statement it runs, to follow the request's text in evidence, for approvers and
   * in the match of a `hold: 0` retry (so an approval of `EXECUTE p(1)` is for that body only); "" when none.
   */
  described: string;
  changes: PlannedChange[];
}

type Resolved = Lookup | { state: "absent" };

/**
 * What the statements of one request (a Query string, or the one statement of a Parse) EXECUTE and change, in order:
 * a statement sees what the statements before it in the request did (had one failed, it would not run), and the
 * session's statements otherwise (`lookup`). "wait" when a lookup must wait for an earlier request's outcome.
 * `entryText` is the text evidence shows for a PREPARE's statement; `unknownMayChange` is
 * PreparedStatements.unknownMayChange.
 */
export function planPrepared(
  statements: readonly PreparedEffects[],
  lookup: (name: string) => Lookup,
  entryText: (index: number) => string,
  unknownMayChange: boolean,
): PreparedPlan | "wait" {
  const plan: PreparedPlan = { facts: [], executed: [], described: "", changes: [] };
  /** Changes of earlier statements of this request: an entry, or null for removed. */
  const local = new Map<string, PreparedEntry | null>();
  /** What names not in `local` are: the session's, removed (after DEALLOCATE ALL), unknown (after a forget). */
  let rest: "session" | "absent" | "unknown" = "session";
  const resolve = (name: string): Resolved => {
    const here = local.get(preparedKey(name));
    if (here === null) return { state: "absent" };
    if (here !== undefined) return { state: "known", entry: here };
    if (rest === "session") return lookup(name);
    return { state: rest };
  };
  const forget = (statement: number) => {
    plan.changes.push({ statement, change: "forget" });
    local.clear();
    rest = "unknown";
  };
  for (let i = 0; i < statements.length; i++) {
    const s = statements[i] as PreparedEffects;
    for (const name of s.executes ?? []) {
      const r = resolve(name);
      if (r.state === "wait") return "wait";
      plan.described += `\n-- prepared statement ${JSON.stringify(name)}: ${describe(r)}`;
      if (r.state === "known") {
        const { entry } = r;
        plan.facts.push(...entry.facts);
        plan.executed.push(summarize(name, entry.facts));
        if (entry.doubt !== undefined) plan.doubt ??= `prepared statement ${JSON.stringify(name)}: ${entry.doubt}`;
        if (entry.changes === true) forget(i + 1);
      } else if (r.state === "absent") {
        plan.executed.push({ name, absent: true });
      } else {
        plan.executed.push({ name, unknown: true });
        plan.doubt ??=
          `EXECUTE of prepared statement ${JSON.stringify(name)}, which the gateway did not see prepared in this ` +
          "session";
        if (unknownMayChange) forget(i + 1);
      }
    }
    if (s.prepare) {
      const entry: PreparedEntry = { text: entryText(i), facts: s.prepare.facts };
      plan.changes.push({ statement: i + 1, change: { op: "set", name: s.prepare.name, entry } });
      local.set(preparedKey(s.prepare.name), entry);
    }
    if (s.deallocate) {
      if ("all" in s.deallocate) {
        plan.changes.push({ statement: i + 1, change: { op: "clear" } });
        local.clear();
        rest = "absent";
      } else {
        plan.changes.push({ statement: i + 1, change: { op: "delete", name: s.deallocate.name } });
        local.set(preparedKey(s.deallocate.name), null);
      }
    }
  }
  return plan;
}

function describe(r: Exclude<Resolved, { state: "wait" }>): string {
  if (r.state === "known") return r.entry.text;
  return r.state === "absent" ? "deallocated earlier in this request" : "not known to the gateway";
}

function summarize(name: string, facts: readonly StatementFact[]): ExecutedStatement {
  const out: ExecutedStatement = {
    name,
    kinds: [...new Set(facts.map((f) => f.kind))],
    tables: [...new Set(facts.flatMap((f) => f.tables))],
  };
  const functions = [...new Set(facts.flatMap((f) => f.functions ?? []))];
  if (functions.length > 0) out.functions = functions;
  return out;
}
