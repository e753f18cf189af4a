import type { RequestFacts, StatementFact } from "../../core/policy/facts.js";
import type { BackendRelay } from "./backend.js";
import { dependsOnState, type TargetLexerState } from "./lexer-state.js";

/** What this adapter needs from the SQL analyzer (src/core/inspect). */
export interface SqlAnalyzerLike {
  analyze(sql: string): {
    facts: RequestFacts;
    statements: {
      kind: string;
      text: string;
      tables: string[];
      hasWhere?: boolean;
      copy?: {
        direction: "from" | "to";
        via: "stdio" | "file" | "program";
        /** From the parse tree; `unknown` when the options do not say text, csv or binary unambiguously. */
        format: "text" | "csv" | "binary" | "unknown";
      };
      /** PREPARE name AS ...: the name and the facts of the body (what EXECUTE name runs). */
      prepare?: { name: string; facts: readonly StatementFact[] };
      /** DEALLOCATE name, or all of them (DEALLOCATE ALL, DISCARD ALL). */
      deallocate?: { name: string } | { all: true };
      /** Names of the prepared statements it EXECUTEs (also under EXPLAIN and CREATE TABLE AS). */
      executes?: readonly string[];
    }[];
    fingerprint?: string;
    error?: string;
    /**
     * The text with secrets replaced (a role's password in `ALTER ROLE x PASSWORD '...'`), present only when
     * there was something to replace: evidence and approvers see it, the target gets the exact text.
     */
    redacted?: string;
  };
}

export type Analysis = ReturnType<SqlAnalyzerLike["analyze"]>;

/** A text as the gateway read it. */
export interface Read {
  analysis: Analysis;
  /**
   * The target may read the text otherwise than the gateway did (its settings, or a SET in the text itself): what
   * the text does to prepared statements is not known either.
   */
  doubtful: boolean;
}

/**
 * Waiting for the target to answer what was forwarded before (BackendRelay.whenSettled), cut short when the session
 * closes. The reader and the planner both wait this way; after `settled()` resolves, `closed` says which happened.
 */
export interface TargetWait {
  settled(): Promise<void>;
  readonly closed: boolean;
}

/**
 * Reads a Query's or Parse's text as the target will read it. The gateway parses as PostgreSQL does with
 * standard_conforming_strings on and UTF-8; a text whose reading depends on the target's settings (lexer-state.ts)
 * is judged on the settings every earlier request left behind, or decided as unparseable when they cannot be
 * known. Kept apart so the dispatcher does not carry the target's lexer settings.
 */
export class SqlReader {
  readonly #analyzer: SqlAnalyzerLike;
  readonly #lexerState: TargetLexerState;
  readonly #relay: BackendRelay;
  readonly #wait: TargetWait;

  constructor(analyzer: SqlAnalyzerLike, lexerState: TargetLexerState, relay: BackendRelay, wait: TargetWait) {
    this.#analyzer = analyzer;
    this.#lexerState = lexerState;
    this.#relay = relay;
    this.#wait = wait;
  }

  /**
   * The analysis of `text` as the target will read it, or undefined if the session closed meanwhile. Text with a
   * backslash or a non-ASCII character reads differently under some target settings (lexer-state.ts): it is
   * judged on the settings every earlier request left behind, so it waits until the target has answered them.
   * Inside an extended-protocol batch after an Execute (`executedSinceSync`) that wait could never end (the target
   * reports at Sync), so such text is unparseable.
   */
  async read(text: string, executedSinceSync: boolean): Promise<Read | undefined> {
    const analysis = this.#analyzer.analyze(text);
    // an error with statements: the text itself changes how the target reads what follows (SET
    // standard_conforming_strings = off ...), so its own later statements may read otherwise
    const doubtful = analysis.error !== undefined && analysis.statements.length > 0;
    if (!dependsOnState(text)) return { analysis, doubtful };
    let doubt: string;
    if (executedSinceSync) {
      doubt =
        "an earlier statement of the same batch may have changed how the target reads text; it reports that only at Sync";
    } else {
      const relay = this.#relay;
      await this.#wait.settled();
      if (this.#wait.closed) return undefined;
      // after an error in this batch the target skips the text unread, whatever it says
      if (relay.skippingToSync) return { analysis, doubtful };
      // a Query in the middle of COPY FROM STDIN (a protocol error the target will answer): nothing to wait for
      const d = relay.copyIn ? "sent while the target waits for COPY data" : this.#lexerState.doubt(text);
      if (d === undefined) return { analysis, doubtful };
      doubt = d;
    }
    // the facts the gateway did read stay: guardrails still run on them under on_unparseable allow or approve
    return { analysis: { ...analysis, facts: { ...analysis.facts, unparseable: { reason: doubt } } }, doubtful: true };
  }
}
