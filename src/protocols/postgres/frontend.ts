import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { RequestFacts, StatementFact } from "../../core/policy/facts.js";
import type { Admission, GatedSession, GateRequest, HoldNotice } from "../../core/session/gate.js";
import type { BackendRelay } from "./backend.js";
import { bodyOf, MessageBuffer, ProtocolError, type Frame } from "./framing.js";
import { dependsOnState, type TargetLexerState } from "./lexer-state.js";
import { readBind, type ParamMasker } from "./params.js";
import {
  planPrepared,
  PreparedStatements,
  type PlannedChange,
  type PreparedEntry,
  type PreparedPlan,
} from "./prepared-statements.js";
import { describePortal, errorResponse, MAX_CLIENT_MESSAGE, parse, query, readCString, SQLSTATE } from "./wire.js";

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

type Analysis = ReturnType<SqlAnalyzerLike["analyze"]>;

/** A text as the gateway read it. */
interface Read {
  analysis: Analysis;
  /**
   * The target may read the text otherwise than the gateway did (its settings, or a SET in the text itself): what
   * the text does to prepared statements is not known either.
   */
  doubtful: boolean;
}

interface Understood {
  read: Read;
  plan: PreparedPlan;
  /** The unit the text belongs to (FrontendPipeline#unit when it arrived). */
  unit: number;
  shown: string;
}

/** What running a parsed statement does to the session's prepared statements; kept only for those that do. */
interface StatementRun {
  /** Names its text EXECUTEs, and the generation they were judged at: it may not run once one of them changed. */
  executes?: { names: string[]; at: number };
  /** What each run changes (its text PREPAREs or DEALLOCATEs, or EXECUTEs a statement that does). */
  changes: PlannedChange[];
  /** The target may read its text otherwise: each run makes the gateway forget every prepared statement. */
  doubtful: boolean;
}

/** The plan of a request that touches no prepared statement (most of them). */
const NO_PLAN: PreparedPlan = Object.freeze({ facts: [], executed: [], described: "", changes: [] });

/**
 * Sent to the target instead of a refused request, so the target itself produces an error at that point of the
 * pipeline: the transaction state is then exactly that of a failed statement (aborted inside a block, nothing
 * outside one), with no state tracking in the gateway. It is a syntax error, so the target never executes (or
 * logs as a statement) anything; the client sees the gateway's refusal in place of the target's error.
 */
export const ABORT_SQL = "gatehouse: request refused by policy";

/** Pause reading the client when this much of its pipeline waits behind a decision. */
const QUEUE_HIGH_WATER = 8 * 1024 * 1024;

/** Why reading the client is paused; it resumes when no reason is left. */
const PAUSED_QUEUE = 1;
const PAUSED_TARGET = 2;
const PAUSED_RECORDER = 4;

export interface FrontendOptions {
  session: GatedSession;
  analyzer: SqlAnalyzerLike;
  /** How the target reads SQL text (its reported settings): text it would read differently is unparseable. */
  lexerState: TargetLexerState;
  client: Socket | TLSSocket;
  target: Duplex;
  relay: BackendRelay;
  /** Insert a Describe before each Execute so the masker always knows the portal's columns. */
  describeBeforeExecute: boolean;
  /**
   * Column masking is configured: COPY ... TO STDOUT is refused, because CopyData rows carry no column identity
   * and could not be masked by column (fail closed).
   */
  refuseCopyOut: boolean;
  /**
   * Content detectors are configured: binary COPY ... TO STDOUT is refused, because detectors scan text and
   * binary CopyData could not be scanned (fail closed; the relay closes the session if one gets through anyway).
   */
  refuseBinaryCopyOut: boolean;
  /** Detectors over bound parameters: a hit is recorded masked. */
  paramMasker: ParamMasker;
  /** Protocol violation: answer FATAL and close this connection only. */
  onFatal: (code: string, message: string) => void;
  /**
   * The recorder's store failed while the client was paused for it (drain() rejected): the session must end, since
   * what it was in the middle of already went to the target and no in-protocol ERROR fits there.
   */
  onRecordingUnavailable: (err: unknown) => void;
  onTerminate: () => void;
}

/**
 * Client -> target. Every request (Query, Parse, FunctionCall) passes `session.admit` before any of its bytes
 * are written to the target; the messages behind it wait in order (evidence before effect, order kept). Other
 * messages (Bind, Execute, Sync, CopyData...) belong to an admitted request and pass through in batches.
 */
export class FrontendPipeline {
  readonly #o: FrontendOptions;
  readonly #buffer = new MessageBuffer();
  readonly #frames: Frame[] = [];
  #queuedBytes = 0;
  #running = false;
  #closed = false;
  /** PAUSED_* bits: why the client socket is not being read. */
  #pausedBy = 0;
  /** The recorder asked to slow down (record() returned false): wait for its drain before the next message. */
  #recorderFull = false;
  /** After a refused Parse: drop messages until Sync, as a server does after an extended-protocol error. */
  #skipToSync = false;
  /** An Execute went to the target since the last Sync: its effect on settings is reported only after the Sync. */
  #executedSinceSync = false;
  readonly #out: Buffer[] = [];
  /** Parsed statements' texts as evidence shows them, for the bind and result events. */
  readonly #statements = new Map<string, string>();
  /** Parsed statements that EXECUTE, PREPARE or DEALLOCATE: what each run of them does. */
  readonly #runs = new Map<string, StatementRun>();
  readonly #portals = new Map<string, { text: string; params?: unknown[]; run?: StatementRun }>();
  /** The session's prepared statements, as the target holds them (SQL PREPARE and named Parse). */
  readonly #prepared = new PreparedStatements();
  /**
   * Requests in one unit run only while the ones before them succeed: a Query string stops at its first error, an
   * extended-protocol batch skips to Sync. A Query, a function call and a Sync end a unit.
   */
  #unit = 0;

  constructor(opts: FrontendOptions) {
    this.#o = opts;
  }

  push(chunk: Buffer): void {
    if (this.#closed) return;
    this.#buffer.push(chunk);
    try {
      for (let f = this.#buffer.nextTyped(MAX_CLIENT_MESSAGE); f; f = this.#buffer.nextTyped(MAX_CLIENT_MESSAGE)) {
        this.#frames.push(f);
        this.#queuedBytes += f.raw.length;
      }
    } catch (err) {
      this.#fatal(err);
      return;
    }
    if (this.#queuedBytes > QUEUE_HIGH_WATER) this.#pause(PAUSED_QUEUE);
    if (!this.#running) this.#run().catch((err: unknown) => this.#fatal(err));
  }

  close(): void {
    this.#closed = true;
    // a request still held for approval is cancelled: nobody is left to resume it for
    this.#abort.abort();
  }

  readonly #abort = new AbortController();
  readonly #closedSignal = new Promise<void>((resolve) =>
    this.#abort.signal.addEventListener("abort", () => resolve(), { once: true }),
  );

  /** Tells the waiting client (psql prints it at once) which approval request holds it and how to approve. */
  readonly #onHold = (hold: HoldNotice): void =>
    this.#o.relay.inject(errorResponse({ severity: "NOTICE", code: "01000", message: hold.message }, "N"));

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#frames.length > 0 && !this.#closed) {
        const frame = this.#frames.shift() as Frame;
        this.#queuedBytes -= frame.raw.length;
        await this.#handle(frame);
        if (this.#recorderFull) await this.#drainRecorder();
      }
      this.#flush();
    } catch (err) {
      this.#fatal(err);
    } finally {
      this.#running = false;
    }
    if (this.#queuedBytes < QUEUE_HIGH_WATER / 2) this.#unpause(PAUSED_QUEUE);
  }

  /**
   * The recorder holds more than its high-water mark: what was admitted goes to the target, then the client is
   * not read (and nothing more is recorded for it) until the recorder has written its backlog, so no event of
   * this session is ever dropped for a full buffer. If the recorder's store fails meanwhile the session ends
   * rather than hang (the client stays paused: nothing more of it is read unrecorded).
   */
  async #drainRecorder(): Promise<void> {
    this.#recorderFull = false;
    this.#flush();
    this.#pause(PAUSED_RECORDER);
    try {
      await this.#o.session.recording.drain();
    } catch (err) {
      this.#stop();
      this.#o.onRecordingUnavailable(err);
      return;
    }
    this.#unpause(PAUSED_RECORDER);
  }

  #pause(reason: number): void {
    if (this.#pausedBy === 0) this.#o.client.pause();
    this.#pausedBy |= reason;
  }

  #unpause(reason: number): void {
    if ((this.#pausedBy & reason) === 0) return;
    this.#pausedBy &= ~reason;
    if (this.#pausedBy === 0 && !this.#closed) this.#o.client.resume();
  }

  async #handle(frame: Frame): Promise<void> {
    if (this.#skipToSync && frame.type !== "S" && frame.type !== "X") return;
    const relay = this.#o.relay;
    switch (frame.type) {
      case "Q":
        await this.#query(frame);
        this.#unit++;
        return;
      case "P":
        return this.#parse(frame);
      case "F":
        await this.#functionCall(frame);
        this.#unit++;
        return;
      case "B":
        if (!this.#bind(frame)) this.#recorderFull = true;
        relay.expect({ kind: "bind" });
        break;
      case "E":
        return this.#execute(frame);
      case "D":
        relay.expect({ kind: "describe" });
        break;
      case "C": {
        const body = bodyOf(frame);
        const [name] = readCString(body, 1);
        let settled: ((completed: number) => void) | undefined;
        if (body[0] === 0x53 /* S */) {
          this.#statements.delete(name);
          this.#runs.delete(name);
          if (name !== "") settled = outcomeOf(this.#prepared.propose({ op: "delete", name }, this.#unit));
        } else this.#portals.delete(name);
        relay.expect({ kind: "close", ...(settled ? { settled } : {}) });
        break;
      }
      case "S":
        this.#skipToSync = false;
        this.#executedSinceSync = false;
        relay.expect({ kind: "sync" });
        this.#unit++;
        break;
      case "H": // Flush
      case "d": // CopyData, CopyDone, CopyFail: part of a COPY the gate already admitted
      case "c":
      case "f":
        break;
      case "X":
        this.#flush();
        this.#closed = true;
        this.#o.onTerminate();
        return;
      default:
        throw new ProtocolError(`unexpected message type '${frame.type}'`);
    }
    this.#out.push(frame.raw);
  }

  async #query(frame: Frame): Promise<void> {
    const [text] = readCString(bodyOf(frame), 0);
    this.#flush();
    const understood = await this.#understand(text);
    if (understood === undefined) return;
    const { read, plan, unit, shown } = understood;
    const { analysis } = read;
    const copyOut = this.#copyOutReason(analysis);
    if (copyOut) {
      this.#o.relay.expect({ kind: "query", refusal: await this.#refusal(shown, copyOut, this.#maskingRule()) });
      this.#out.push(query(ABORT_SQL));
      this.#flush();
      return;
    }
    const admission = await this.#o.session.admit(this.#request(text, shown, read, plan, { message: "query" }));
    if (admission.forward) {
      const settled = this.#carryOut(read.doubtful, plan.changes, unit);
      this.#o.relay.expect({
        kind: "query",
        track: { text: shown, started: performance.now(), results: 0 },
        ...(settled ? { settled } : {}),
      });
      this.#out.push(frame.raw);
    } else {
      this.#o.relay.expect({ kind: "query", refusal: refusal(admission) });
      this.#out.push(query(ABORT_SQL));
    }
    this.#flush();
  }

  async #parse(frame: Frame): Promise<void> {
    const body = bodyOf(frame);
    const [name, afterName] = readCString(body, 0);
    const [text] = readCString(body, afterName);
    this.#flush();
    const understood = await this.#understand(text);
    if (understood === undefined) return;
    const { read, plan, unit, shown } = understood;
    const { analysis } = read;
    const copyOut = this.#copyOutReason(analysis);
    if (copyOut) {
      this.#forgetStatement(name);
      this.#refuseInBatch(await this.#refusal(shown, copyOut, this.#maskingRule()));
      this.#flush();
      return;
    }
    const request = this.#request(text, shown, read, plan, { message: "parse", ...(name ? { statement: name } : {}) });
    const admission = await this.#o.session.admit(request);
    if (admission.forward) {
      // kept for the bind and result evidence of this statement: the redacted text, never the secret
      this.#statements.set(name, shown);
      // a named statement can be EXECUTEd from SQL too: what that runs is what this Parse was decided on
      const settled =
        name === ""
          ? undefined
          : outcomeOf(
              this.#prepared.propose({ op: "set", name, entry: parsedEntry(shown, request, read, plan) }, unit),
            );
      if (plan !== NO_PLAN || read.doubtful) this.#runs.set(name, this.#runOf(read, plan));
      else this.#runs.delete(name);
      this.#o.relay.expect({ kind: "parse", ...(settled ? { settled } : {}) });
      this.#out.push(frame.raw);
    } else {
      this.#forgetStatement(name);
      this.#refuseInBatch(refusal(admission));
    }
    this.#flush();
  }

  /**
   * A Query's or Parse's text as the target will read it, what it does with prepared statements in the current
   * unit, and what evidence shows of it (the text with its secrets replaced, when the analyzer found any); undefined
   * if the session closed meanwhile.
   */
  async #understand(text: string): Promise<Understood | undefined> {
    const unit = this.#unit;
    const read = await this.#analyze(text);
    // most texts touch no prepared statement: no async step for them
    const plan = read && (namesPrepared(read) ? await this.#plan(read, unit) : NO_PLAN);
    if (read === undefined || plan === undefined) return undefined;
    return { read, plan, unit, shown: read.analysis.redacted ?? text };
  }

  /**
   * The analysis of `text` as the target will read it, or undefined if the session closed meanwhile. Text with a
   * backslash or a non-ASCII character reads differently under some target settings (lexer-state.ts): it is
   * judged on the settings every earlier request left behind, so it waits until the target has answered them.
   * Inside an extended-protocol batch after an Execute that wait could never end (the target reports at Sync),
   * so such text is unparseable.
   */
  async #analyze(text: string): Promise<Read | undefined> {
    const analysis = this.#o.analyzer.analyze(text);
    // an error with statements: the text itself changes how the target reads what follows (SET
    // standard_conforming_strings = off ...), so its own later statements may read otherwise
    const doubtful = analysis.error !== undefined && analysis.statements.length > 0;
    if (!dependsOnState(text)) return { analysis, doubtful };
    let doubt: string;
    if (this.#executedSinceSync) {
      doubt =
        "an earlier statement of the same batch may have changed how the target reads text; it reports that only at Sync";
    } else {
      const relay = this.#o.relay;
      await Promise.race([relay.whenSettled(), this.#closedSignal]);
      if (this.#closed) return undefined;
      // after an error in this batch the target skips the text unread, whatever it says
      if (relay.skippingToSync) return { analysis, doubtful };
      // a Query in the middle of COPY FROM STDIN (a protocol error the target will answer): nothing to wait for
      const d = relay.copyIn ? "sent while the target waits for COPY data" : this.#o.lexerState.doubt(text);
      if (d === undefined) return { analysis, doubtful };
      doubt = d;
    }
    // the facts the gateway did read stay: guardrails still run on them under on_unparseable allow or approve
    return { analysis: { ...analysis, facts: { ...analysis.facts, unparseable: { reason: doubt } } }, doubtful: true };
  }

  /**
   * What the request's EXECUTEs run and what it changes in the session's prepared statements (see
   * prepared-statements.ts), or undefined if the session closed meanwhile. A name whose last change belongs to an
   * earlier request the target has not answered yet waits for that answer; where waiting cannot settle it (COPY
   * data expected, a batch being skipped to Sync) the name is unknown.
   */
  async #plan(read: Read, unit: number): Promise<PreparedPlan | undefined> {
    const statements = read.analysis.statements;
    const prepared = this.#prepared;
    const text = (i: number) => read.analysis.redacted ?? statements[i]?.text ?? "";
    const first = planPrepared(statements, (n) => prepared.lookup(n, unit), text, prepared.unknownMayChange);
    if (first !== "wait") return first;
    await Promise.race([this.#o.relay.whenSettled(), this.#closedSignal]);
    if (this.#closed) return undefined;
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
  #carryOut(
    doubtful: boolean,
    changes: readonly PlannedChange[],
    unit: number,
  ): ((completed: number) => void) | undefined {
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

  #runOf(read: Read, plan: PreparedPlan): StatementRun {
    const names = read.analysis.statements.flatMap((s) => s.executes ?? []);
    return {
      ...(names.length > 0 ? { executes: { names, at: this.#prepared.generation } } : {}),
      changes: plan.changes,
      doubtful: read.doubtful,
    };
  }

  /**
   * Refuses an extended-protocol request: a Parse that fails on the target takes its place, so the target aborts
   * the batch as it would for any failed message, and the client gets `refusalMsg` instead of that error.
   */
  #refuseInBatch(refusalMsg: Buffer): void {
    this.#o.relay.expect({ kind: "parse", refusal: refusalMsg });
    this.#out.push(parse(ABORT_SQL));
    this.#skipToSync = true;
  }

  #forgetStatement(name: string): void {
    this.#statements.delete(name);
    this.#runs.delete(name);
  }

  /**
   * Execute: forwarded as part of the statement admitted at its Parse, unless that statement EXECUTEs a prepared
   * statement that changed since it was judged (its portal would run another body now): then it is refused like a
   * failed Parse. Each run of a statement that changes prepared statements proposes those changes.
   */
  async #execute(frame: Frame): Promise<void> {
    this.#executedSinceSync = true;
    const relay = this.#o.relay;
    const [portal] = readCString(bodyOf(frame), 0);
    const p = this.#portals.get(portal);
    const run = p?.run;
    if (run?.executes && this.#prepared.changedSince(run.executes.names, run.executes.at)) {
      this.#flush();
      const names = run.executes.names.map((n) => JSON.stringify(n)).join(", ");
      this.#refuseInBatch(
        await this.#refusal(p?.text ?? "", {
          reason: `prepared statement ${names} changed after this statement was checked at its Parse`,
          hint: "parse the statement again",
        }),
      );
      this.#flush();
      return;
    }
    if (this.#o.describeBeforeExecute) {
      relay.expect({ kind: "describe", injected: true });
      this.#out.push(describePortal(portal));
    }
    const settled = run ? this.#carryOut(run.doubtful, run.changes, this.#unit) : undefined;
    relay.expect({
      kind: "execute",
      track: { text: p?.text ?? "", started: performance.now(), results: 0 },
      ...(settled ? { settled } : {}),
    });
    this.#out.push(frame.raw);
  }

  async #functionCall(frame: Frame): Promise<void> {
    const oid = bodyOf(frame).readUInt32BE(0);
    const text = `<function call oid ${oid}>`;
    this.#flush();
    // the fast-path interface runs a function by OID with no SQL to analyse: it is decided as unparseable
    const admission = await this.#o.session.admit({
      text,
      facts: {
        statements: [],
        commands: [],
        pipelines: [],
        apiCalls: [],
        httpCalls: [],
        unparseable: { reason: "function call (fast-path interface)" },
      },
      data: { message: "function_call", function_oid: oid },
      onHold: this.#onHold,
      signal: this.#abort.signal,
    });
    if (admission.forward) {
      this.#o.relay.expect({ kind: "function" });
      this.#out.push(frame.raw);
    } else {
      this.#o.relay.expect({ kind: "function", refusal: refusal(admission) });
      this.#out.push(query(ABORT_SQL));
    }
    this.#flush();
  }

  /**
   * What the gate decides on for a Query or Parse: the exact text, and the redacted one evidence shows when it
   * differs. An EXECUTE is decided on the facts of what it runs too; the text evidence and approvers see names
   * that after the statement (`-- prepared statement "p": PREPARE p AS ...`), and so does the text a `hold: 0`
   * retry is matched on, so an approval is for that body only.
   */
  #request(text: string, shown: string, read: Read, plan: PreparedPlan, data: Record<string, unknown>): GateRequest {
    const { analysis } = read;
    const request: GateRequest = {
      text: text + plan.described,
      facts: withExecuted(analysis.facts, plan),
      data: {
        ...data,
        kinds: analysis.statements.map((s) => s.kind),
        ...(plan.executed.length > 0 ? { prepared: plan.executed } : {}),
      },
      ...this.#fingerprint(analysis),
      onHold: this.#onHold,
      signal: this.#abort.signal,
    };
    if (shown !== text) request.shown = { text: shown + plan.described };
    return request;
  }

  /**
   * The analyzer computes fingerprints lazily (~20 us each); only approvers ever see one, so a connection without
   * approval rules never pays for it.
   */
  #fingerprint(analysis: Analysis): { fingerprint?: string } {
    if (this.#o.session.connection.approvals.length === 0) return {};
    const fingerprint = analysis.fingerprint;
    return fingerprint !== undefined ? { fingerprint } : {};
  }

  /**
   * Why a COPY ... TO STDOUT in this request cannot be let through, if it cannot. Costs nothing on a connection
   * without masking.
   *
   * Binary output is recognised by the COPY format the analyzer read from the parse tree (`FORMAT binary` in any
   * spelling the parser resolves, `E'\x62inary'` included, and the older `COPY BINARY t` / `WITH BINARY`); a
   * format it could not resolve (`unknown`) is refused as well, and a column named `binary` is just a column.
   * Should binary output get past this anyway (the server reading the text differently, e.g. after
   * `SET standard_conforming_strings = off`), the relay sees the target's binary CopyOutResponse and closes the
   * session before any row passes.
   */
  #copyOutReason(analysis: Analysis): RefusalReason | undefined {
    const o = this.#o;
    if (!o.refuseCopyOut && !o.refuseBinaryCopyOut) return undefined;
    for (const s of analysis.statements) {
      if (s.copy?.direction !== "to" || s.copy.via !== "stdio") continue;
      if (o.refuseCopyOut) return COPY_OUT_COLUMNS;
      if (s.copy.format === "binary") return COPY_OUT_BINARY;
      if (s.copy.format !== "text" && s.copy.format !== "csv") return COPY_OUT_FORMAT;
    }
    return undefined;
  }

  #maskingRule(): string {
    return `connections[${this.#o.session.connection.index}].masking`;
  }

  /**
   * A refusal of the gateway's own rather than of a policy decision (a COPY TO STDOUT that masking could not cover,
   * an Execute whose prepared statement changed), recorded as a blocked request.
   */
  async #refusal(text: string, why: RefusalReason, rule?: string): Promise<Buffer> {
    await this.#o.session.refuse({ text }, { reason: why.reason, ...(rule ? { rule } : {}) });
    return errorResponse({
      severity: "ERROR",
      code: SQLSTATE.insufficientPrivilege,
      message: rule ? `gatehouse: blocked by ${rule} (${why.reason})` : `gatehouse: ${why.reason}`,
      hint: why.hint,
    });
  }

  /**
   * Records the bound parameters (text as text, binary as hex, detector hits masked), bounded in size and
   * count. False when the recorder asks the producer to wait for its drain.
   */
  #bind(frame: Frame): boolean {
    const bind = readBind(frame, this.#o.paramMasker);
    const text = this.#statements.get(bind.statement) ?? "";
    const run = this.#runs.get(bind.statement);
    this.#portals.set(bind.portal, { text, params: bind.params, ...(run ? { run } : {}) });
    try {
      return this.#o.session.recording.record("bind", {
        ...(bind.portal ? { portal: bind.portal } : {}),
        ...(bind.statement ? { statement: bind.statement } : {}),
        text,
        params: bind.params,
        ...(bind.total > bind.params.length ? { params_total: bind.total } : {}),
        params_bytes: bind.bytes,
        ...(bind.masked > 0 ? { params_masked: bind.masked } : {}),
      });
    } catch {
      // recording buffer full: the request itself was already decided and audited at Parse
      return true;
    }
  }

  #flush(): void {
    const out = this.#out;
    if (out.length === 0) return;
    const target = this.#o.target;
    let ok: boolean;
    if (out.length === 1) ok = target.write(out[0] as Buffer);
    else ok = target.write(Buffer.concat(out));
    out.length = 0;
    if (!ok && (this.#pausedBy & PAUSED_TARGET) === 0) {
      this.#pause(PAUSED_TARGET);
      target.once("drain", () => this.#unpause(PAUSED_TARGET));
    }
  }

  /** Reads and forwards nothing more; what is queued is dropped (the session is ending). */
  #stop(): void {
    this.#closed = true;
    this.#frames.length = 0;
  }

  #fatal(err: unknown): void {
    if (this.#closed) return;
    this.#stop();
    const message = err instanceof Error ? err.message : String(err);
    this.#o.onFatal(SQLSTATE.protocolViolation, `gatehouse: invalid message: ${message}`);
  }
}

interface RefusalReason {
  reason: string;
  hint: string;
}

const COPY_OUT_COLUMNS: RefusalReason = {
  reason: "COPY ... TO STDOUT cannot be masked by column on a connection with column masking",
  hint: "select the rows instead: query results are masked",
};

const COPY_OUT_BINARY: RefusalReason = {
  reason: "binary COPY ... TO STDOUT cannot be scanned by the content detectors of this connection",
  hint: "use FORMAT text or csv: their rows are scanned and masked",
};

const COPY_OUT_FORMAT: RefusalReason = {
  reason: "COPY ... TO STDOUT in a format the gateway cannot read cannot be scanned by the content detectors",
  hint: COPY_OUT_BINARY.hint,
};

/** The relay's outcome callback for one proposed change: applied when the message completed. */
/** The text EXECUTEs, PREPAREs or DEALLOCATEs: its plan needs the session's prepared statements. */
function namesPrepared(read: Read): boolean {
  return read.analysis.statements.some((s) => s.executes || s.prepare || s.deallocate);
}

function outcomeOf(settle: (applied: boolean) => void): (completed: number) => void {
  return (completed) => settle(completed > 0);
}

/** A request's facts with those of the bodies it EXECUTEs; unparseable when one of them cannot be judged. */
function withExecuted(facts: RequestFacts, plan: PreparedPlan): RequestFacts {
  if (plan.facts.length === 0 && plan.doubt === undefined) return facts;
  const merged: RequestFacts = { ...facts, statements: [...facts.statements, ...plan.facts] };
  if (plan.doubt !== undefined && merged.unparseable === undefined) merged.unparseable = { reason: plan.doubt };
  return merged;
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

/** The ErrorResponse a refused request gets: names the rule (path and summary), not the raw matcher. */
export function refusal(admission: Extract<Admission, { forward: false }>): Buffer {
  let message: string;
  if (admission.kind === "denied" && admission.rule) {
    message = `gatehouse: blocked by ${admission.rule.path} (${admission.rule.summary})`;
  } else if (admission.kind === "evidence_unavailable") {
    message = `gatehouse: ${admission.message}`;
  } else {
    message = `gatehouse: ${admission.message}${admission.approvalId ? ` (request ${admission.approvalId})` : ""}`;
  }
  return errorResponse({
    severity: "ERROR",
    code: SQLSTATE.insufficientPrivilege,
    message,
    ...(admission.kind === "denied" && admission.message !== message ? { detail: admission.message } : {}),
  });
}
