import { describe, expect, it } from "vitest";
import type { StatementFact } from "../../core/policy/facts.js";
import {
  planPrepared,
  preparedKey,
  PreparedStatements,
  type Lookup,
  type PreparedEffects,
  type PreparedEntry,
  type PreparedPlan,
} from "./prepared-statements.js";

const DELETE: StatementFact = { kind: "delete", tables: ["users"], hasWhere: false };
const SELECT: StatementFact = { kind: "select", tables: ["t"] };
const entry = (text: string, facts: StatementFact[] = [SELECT], more: Partial<PreparedEntry> = {}): PreparedEntry => ({
  text,
  facts,
  ...more,
});

/** A map that knows `name` (confirmed by the target). */
function knowing(...names: [string, PreparedEntry][]): PreparedStatements {
  const m = new PreparedStatements();
  for (const [name, e] of names) m.propose({ op: "set", name, entry: e }, 0)(true);
  return m;
}

const plan = (m: PreparedStatements, statements: PreparedEffects[], unit = 1): PreparedPlan | "wait" =>
  planPrepared(
    statements,
    (n) => m.lookup(n, unit),
    (i) => `statement ${i + 1}`,
    m.unknownMayChange,
  );

describe("preparedKey: the server's 63 bytes", () => {
  it("keeps names up to 63 bytes and cuts longer ones as the server's hash does", () => {
    expect(preparedKey("p")).toBe("p");
    expect(preparedKey("a".repeat(63))).toBe("a".repeat(63));
    expect(preparedKey("a".repeat(70))).toBe("a".repeat(63));
    expect(preparedKey("é".repeat(31))).toBe("é".repeat(31));
    // a cut inside a character: the same key for every name with those 63 bytes, and none that a short name has
    const cut = preparedKey("é".repeat(40));
    expect(cut).toBe(preparedKey(`${"é".repeat(31)}\u00e9x`));
    expect(cut).not.toBe(preparedKey("é".repeat(31)));
    expect(cut.startsWith("\0")).toBe(true);
  });

  it("a protocol name longer than 63 bytes is the same statement as its first 63 bytes in SQL", () => {
    const m = knowing(["b".repeat(70), entry("long")]);
    expect(m.lookup("b".repeat(63), 1)).toEqual({ state: "known", entry: entry("long") });
  });
});

describe("PreparedStatements: what the target carried out", () => {
  it("a change counts once the target completed it; a failed one never", () => {
    const m = new PreparedStatements();
    const done = m.propose({ op: "set", name: "p", entry: entry("p1") }, 1);
    const refused = m.propose({ op: "set", name: "p", entry: entry("p2", [DELETE]) }, 2);
    done(true);
    refused(false);
    expect(m.lookup("p", 3)).toEqual({ state: "known", entry: entry("p1") });
    m.propose({ op: "delete", name: "p" }, 3)(true);
    expect(m.lookup("p", 4)).toEqual({ state: "unknown" });
  });

  it("within a unit, an earlier change counts as carried out; a later unit waits for the outcome", () => {
    const m = knowing(["p", entry("old")]);
    const settle = m.propose({ op: "set", name: "q", entry: entry("q") }, 5);
    expect(m.lookup("q", 5)).toEqual({ state: "known", entry: entry("q") });
    expect(m.lookup("q", 6)).toEqual({ state: "wait" });
    // other names do not wait
    expect(m.lookup("p", 6)).toEqual({ state: "known", entry: entry("old") });
    settle(false);
    expect(m.lookup("q", 6)).toEqual({ state: "unknown" });
  });

  it("outcomes are folded in order: a later change waits behind an earlier one still in flight", () => {
    const m = new PreparedStatements();
    const first = m.propose({ op: "set", name: "p", entry: entry("p") }, 1);
    m.propose({ op: "clear" }, 2)(true);
    expect(m.lookup("p", 3)).toEqual({ state: "wait" });
    first(true);
    expect(m.lookup("p", 3)).toEqual({ state: "unknown" });
    expect(m.size).toBe(0);
  });

  it("forget: nothing is known afterwards; forgetting a statement that changes others makes unknown ones suspect", () => {
    const m = knowing(["p", entry("p")], ["changer", entry("PREPARE x AS ...", [], { changes: true })]);
    expect(m.unknownMayChange).toBe(false);
    m.forget();
    expect(m.lookup("p", 1)).toEqual({ state: "unknown" });
    expect(m.unknownMayChange).toBe(true);
    const clean = knowing(["p", entry("p")]);
    clean.propose({ op: "clear" }, 1)(true);
    expect(clean.unknownMayChange).toBe(false);
  });

  it("is bounded: the least recently used statement is unknown once over the limit", () => {
    const m = new PreparedStatements({ entries: 3, chars: 1000 });
    for (const n of ["a", "b", "c"]) m.propose({ op: "set", name: n, entry: entry(n) }, 0)(true);
    expect(m.lookup("a", 1).state).toBe("known"); // a is now the most recently used
    m.propose({ op: "set", name: "d", entry: entry("d") }, 0)(true);
    expect(["a", "b", "c", "d"].map((n) => m.lookup(n, 1).state)).toEqual(["known", "unknown", "known", "known"]);
    // by characters too; a text over an eighth of the budget is not kept at all
    const small = new PreparedStatements({ entries: 100, chars: 80 });
    small.propose({ op: "set", name: "big", entry: entry("x".repeat(20)) }, 0)(true);
    expect(small.lookup("big", 1).state).toBe("unknown");
    for (const n of ["a", "b", "c", "d", "e", "f", "g", "h"]) {
      small.propose({ op: "set", name: n, entry: entry("x".repeat(8)) }, 0)(true);
    }
    expect(small.size).toBe(8);
    small.propose({ op: "set", name: "i", entry: entry("x".repeat(8)) }, 0)(true);
    expect(small.size).toBe(8);
    expect(small.lookup("a", 1).state).toBe("unknown");
    // a statement that changes others falling out makes unknown ones suspect
    const changers = new PreparedStatements({ entries: 1, chars: 1000 });
    changers.propose({ op: "set", name: "c", entry: entry("c", [], { changes: true }) }, 0)(true);
    changers.propose({ op: "set", name: "d", entry: entry("d") }, 0)(true);
    expect(changers.unknownMayChange).toBe(true);
  });

  it("changedSince: per name, and everything after a clear or forget", () => {
    const m = knowing(["p", entry("p")]);
    const at = m.generation;
    m.propose({ op: "set", name: "other", entry: entry("o") }, 1);
    expect(m.changedSince(["p"], at)).toBe(false);
    m.propose({ op: "delete", name: "p" }, 1);
    expect(m.changedSince(["p"], at)).toBe(true);
    const later = m.generation;
    expect(m.changedSince(["p"], later)).toBe(false);
    m.forget();
    expect(m.changedSince(["anything"], later)).toBe(true);
  });
});

describe("planPrepared: what a request EXECUTEs and changes", () => {
  it("EXECUTE adds the body's facts and names it for evidence", () => {
    const m = knowing(["del", entry("PREPARE del AS DELETE FROM users", [DELETE])]);
    const p = plan(m, [{ executes: ["del"] }]) as PreparedPlan;
    expect(p.facts).toEqual([DELETE]);
    expect(p.doubt).toBeUndefined();
    expect(p.executed).toEqual([{ name: "del", kinds: ["delete"], tables: ["users"] }]);
    expect(p.described).toBe('\n-- prepared statement "del": PREPARE del AS DELETE FROM users');
    expect(p.changes).toEqual([]);
  });

  it("an unknown name, or a body the gateway could not read, makes the request unparseable", () => {
    const m = knowing(["odd", entry("odd", [SELECT], { doubt: "the target may read it otherwise" })]);
    const unknown = plan(m, [{ executes: ["nope"] }]) as PreparedPlan;
    expect(unknown.doubt).toBe(
      'EXECUTE of prepared statement "nope", which the gateway did not see prepared in this session',
    );
    expect(unknown.executed).toEqual([{ name: "nope", unknown: true }]);
    expect(unknown.described).toBe('\n-- prepared statement "nope": not known to the gateway');
    expect((plan(m, [{ executes: ["odd"] }]) as PreparedPlan).doubt).toBe(
      'prepared statement "odd": the target may read it otherwise',
    );
  });

  it("statements see what the ones before them in the same request did, not what comes after", () => {
    const m = knowing(["p", entry("old")]);
    const body = [DELETE];
    const p = plan(m, [
      { executes: ["p"] },
      { deallocate: { name: "p" } },
      { executes: ["p"] },
      { prepare: { name: "p", facts: body } },
      { executes: ["p"] },
      { deallocate: { all: true } },
      { executes: ["p"] },
    ]) as PreparedPlan;
    expect(p.executed).toEqual([
      { name: "p", kinds: ["select"], tables: ["t"] },
      { name: "p", absent: true },
      { name: "p", kinds: ["delete"], tables: ["users"] },
      { name: "p", absent: true },
    ]);
    expect(p.facts).toEqual([SELECT, DELETE]);
    expect(p.doubt).toBeUndefined();
    expect(p.changes).toEqual([
      { statement: 2, change: { op: "delete", name: "p" } },
      { statement: 4, change: { op: "set", name: "p", entry: { text: "statement 4", facts: body } } },
      { statement: 6, change: { op: "clear" } },
    ]);
  });

  it("running a statement that changes prepared statements forgets them all, for the rest of the request too", () => {
    const m = knowing(["changer", entry("PREPARE x AS SELECT 1", [], { changes: true })], ["p", entry("p")]);
    const p = plan(m, [{ executes: ["changer"] }, { executes: ["p"] }]) as PreparedPlan;
    expect(p.changes).toEqual([{ statement: 1, change: "forget" }]);
    expect(p.executed[1]).toEqual({ name: "p", unknown: true });
    expect(p.doubt).toMatch(/"p", which the gateway did not see prepared/);
  });

  it("an unknown statement forgets them all when a forgotten one could have changed them", () => {
    const m = knowing(["changer", entry("c", [], { changes: true })]);
    m.forget();
    expect((plan(m, [{ executes: ["nope"] }]) as PreparedPlan).changes).toEqual([{ statement: 1, change: "forget" }]);
  });

  it("waits when a name's last change belongs to an earlier request still in flight", () => {
    const m = new PreparedStatements();
    m.propose({ op: "set", name: "p", entry: entry("p") }, 1);
    expect(plan(m, [{ executes: ["p"] }], 2)).toBe("wait");
    expect((plan(m, [{ executes: ["p"] }], 1) as PreparedPlan).executed).toEqual([
      { name: "p", kinds: ["select"], tables: ["t"] },
    ]);
    const lookup = (n: string): Lookup => {
      const found = m.lookup(n, 2);
      return found.state === "wait" ? { state: "unknown" } : found;
    };
    expect((planPrepared([{ executes: ["p"] }], lookup, () => "", false) as PreparedPlan).doubt).toBeDefined();
  });
});
