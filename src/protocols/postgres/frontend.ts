import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { GatedSession, GateRequest, HoldNotice } from "../../core/session/gate.js";
import type { BackendRelay } from "./backend.js";
import { ClientFlow } from "./client-flow.js";
import { copyOutRefusal, maskingRule, type CopyOutPolicy } from "./copy-policy.js";
import { bodyOf, ProtocolError, type Frame } from "./framing.js";
import type { TargetLexerState } from "./lexer-state.js";
import { readBind, type ParamMasker } from "./params.js";
import type { PreparedPlan } from "./prepared-statements.js";
import { ABORT_SQL, ownRefusalAnswer, refusalAnswer } from "./refusals.js";
import { SqlReader, type Analysis, type Read, type SqlAnalyzerLike, type TargetWait } from "./sql-reading.js";
import { namesPrepared, NO_PLAN, StatementPlanner, withExecuted } from "./statement-planner.js";
import { describePortal, errorResponse, parse, query, readCString, SQLSTATE } from "./wire.js";

interface Understood {
  read: Read;
  plan: PreparedPlan;
  /** The unit the text belongs to (StatementPlanner#unit when it arrived). */
  unit: number;
  shown: string;
}

export interface FrontendOptions extends CopyOutPolicy {
  session: GatedSession;
  analyzer: SqlAnalyzerLike;
  /** How the target reads SQL text (its reported settings): text it would read differently is unparseable. */
  lexerState: TargetLexerState;
  client: Socket | TLSSocket;
  target: Duplex;
  relay: BackendRelay;
  /** Insert a Describe before each Execute so the masker always knows the portal's columns. */
  describeBeforeExecute: boolean;
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
 * Client -> target: the dispatcher. Every request (Query, Parse, FunctionCall) passes `session.admit` before any of
 * its bytes are written to the target; the messages behind it wait in order (evidence before effect, order kept).
 * Other messages (Bind, Execute, Sync, CopyData...) belong to an admitted request and pass through in batches.
 * It decides per message type what happens and leaves the rest to its parts: the queue and flow control
 * (client-flow.ts), how the target reads a text (sql-reading.ts), what a request does to prepared statements and
 * which statement a portal runs (statement-planner.ts), which COPY may run (copy-policy.ts), and the ErrorResponse
 * of a refusal (refusals.ts).
 */
export class FrontendPipeline {
  readonly #o: FrontendOptions;
  readonly #flow: ClientFlow;
  readonly #reader: SqlReader;
  readonly #planner: StatementPlanner;
  #running = false;
  /** The recorder asked to slow down (record() returned false): wait for its drain before the next message. */
  #recorderFull = false;
  /** After a refused Parse: drop messages until Sync, as a server does after an extended-protocol error. */
  #skipToSync = false;
  /** An Execute went to the target since the last Sync: its effect on settings is reported only after the Sync. */
  #executedSinceSync = false;
  readonly #abort = new AbortController();
  readonly #closedSignal = new Promise<void>((resolve) =>
    this.#abort.signal.addEventListener("abort", () => resolve(), { once: true }),
  );

  constructor(opts: FrontendOptions) {
    this.#o = opts;
    const flow = new ClientFlow(opts.client, opts.target, opts.onRecordingUnavailable);
    const relay = opts.relay;
    const closedSignal = this.#closedSignal;
    const wait: TargetWait = {
      settled: () => Promise.race([relay.whenSettled(), closedSignal]),
      get closed() {
        return flow.closed;
      },
    };
    this.#flow = flow;
    this.#reader = new SqlReader(opts.analyzer, opts.lexerState, relay, wait);
    this.#planner = new StatementPlanner(wait);
  }

  push(chunk: Buffer): void {
    if (this.#flow.closed) return;
    try {
      this.#flow.receive(chunk);
    } catch (err) {
      this.#fatal(err);
      return;
    }
    if (!this.#running) this.#run().catch((err: unknown) => this.#fatal(err));
  }

  close(): void {
    this.#flow.close();
    // a request still held for approval is cancelled: nobody is left to resume it for
    this.#abort.abort();
  }

  /** Tells the waiting client (psql prints it at once) which approval request holds it and how to approve. */
  readonly #onHold = (hold: HoldNotice): void =>
    this.#o.relay.inject(errorResponse({ severity: "NOTICE", code: "01000", message: hold.message }, "N"));

  async #run(): Promise<void> {
    const flow = this.#flow;
    this.#running = true;
    try {
      while (!flow.closed) {
        const frame = flow.next();
        if (frame === undefined) break;
        await this.#handle(frame);
        if (this.#recorderFull) {
          this.#recorderFull = false;
          await flow.waitForRecorder(this.#o.session.recording);
        }
      }
      flow.flush();
    } catch (err) {
      this.#fatal(err);
    } finally {
      this.#running = false;
    }
    flow.caughtUp();
  }

  async #handle(frame: Frame): Promise<void> {
    if (this.#skipToSync && frame.type !== "S" && frame.type !== "X") return;
    const relay = this.#o.relay;
    switch (frame.type) {
      case "Q":
        await this.#query(frame);
        this.#planner.endUnit();
        return;
      case "P":
        return this.#parse(frame);
      case "F":
        await this.#functionCall(frame);
        this.#planner.endUnit();
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
        if (body[0] === 0x53 /* S */) settled = this.#planner.closeStatement(name);
        else this.#planner.closePortal(name);
        relay.expect({ kind: "close", ...(settled ? { settled } : {}) });
        break;
      }
      case "S":
        this.#skipToSync = false;
        this.#executedSinceSync = false;
        relay.expect({ kind: "sync" });
        this.#planner.endUnit();
        break;
      case "H": // Flush
      case "d": // CopyData, CopyDone, CopyFail: part of a COPY the gate already admitted
      case "c":
      case "f":
        break;
      case "X":
        this.#flow.flush();
        this.#flow.close();
        this.#o.onTerminate();
        return;
      default:
        throw new ProtocolError(`unexpected message type '${frame.type}'`);
    }
    this.#flow.send(frame.raw);
  }

  async #query(frame: Frame): Promise<void> {
    const [text] = readCString(bodyOf(frame), 0);
    const flow = this.#flow;
    flow.flush();
    const understood = await this.#understand(text);
    if (understood === undefined) return;
    const { read, plan, unit, shown } = understood;
    const copyOut = copyOutRefusal(read.analysis, this.#o);
    if (copyOut) {
      const session = this.#o.session;
      this.#refuseQuery("query", await ownRefusalAnswer(session, shown, copyOut, maskingRule(session)));
      flow.flush();
      return;
    }
    const admission = await this.#o.session.admit(this.#request(text, shown, read, plan, { message: "query" }));
    if (admission.forward) {
      const settled = this.#planner.carryOut(read.doubtful, plan.changes, unit);
      this.#o.relay.expect({
        kind: "query",
        track: { text: shown, started: performance.now(), results: 0 },
        ...(settled ? { settled } : {}),
      });
      flow.send(frame.raw);
    } else {
      this.#refuseQuery("query", refusalAnswer(admission));
    }
    flow.flush();
  }

  async #parse(frame: Frame): Promise<void> {
    const body = bodyOf(frame);
    const [name, afterName] = readCString(body, 0);
    const [text] = readCString(body, afterName);
    const flow = this.#flow;
    flow.flush();
    const understood = await this.#understand(text);
    if (understood === undefined) return;
    const { read, plan, unit, shown } = understood;
    const copyOut = copyOutRefusal(read.analysis, this.#o);
    if (copyOut) {
      this.#planner.forgetStatement(name);
      const session = this.#o.session;
      this.#refuseInBatch(await ownRefusalAnswer(session, shown, copyOut, maskingRule(session)));
      flow.flush();
      return;
    }
    const request = this.#request(text, shown, read, plan, { message: "parse", ...(name ? { statement: name } : {}) });
    const admission = await this.#o.session.admit(request);
    if (admission.forward) {
      const settled = this.#planner.parsed(name, shown, request, read, plan, unit);
      this.#o.relay.expect({ kind: "parse", ...(settled ? { settled } : {}) });
      flow.send(frame.raw);
    } else {
      this.#planner.forgetStatement(name);
      this.#refuseInBatch(refusalAnswer(admission));
    }
    flow.flush();
  }

  /**
   * A Query's or Parse's text as the target will read it, what it does with prepared statements in the current
   * unit, and what evidence shows of it (the text with its secrets replaced, when the analyzer found any); undefined
   * if the session closed meanwhile.
   */
  async #understand(text: string): Promise<Understood | undefined> {
    const unit = this.#planner.unit;
    const read = await this.#reader.read(text, this.#executedSinceSync);
    // most texts touch no prepared statement: no async step for them
    const plan = read && (namesPrepared(read) ? await this.#planner.plan(read, unit) : NO_PLAN);
    if (read === undefined || plan === undefined) return undefined;
    return { read, plan, unit, shown: read.analysis.redacted ?? text };
  }

  /**
   * Refuses a Query or FunctionCall: the abort statement takes its place, so the target fails it as it would any
   * failed statement, and the client gets `answer` instead of that error.
   */
  #refuseQuery(kind: "query" | "function", answer: Buffer): void {
    this.#o.relay.expect({ kind, refusal: answer });
    this.#flow.send(query(ABORT_SQL));
  }

  /**
   * Refuses an extended-protocol request: a Parse that fails on the target takes its place, so the target aborts
   * the batch as it would for any failed message, and the client gets `answer` instead of that error.
   */
  #refuseInBatch(answer: Buffer): void {
    this.#o.relay.expect({ kind: "parse", refusal: answer });
    this.#flow.send(parse(ABORT_SQL));
    this.#skipToSync = true;
  }

  /**
   * Execute: forwarded as part of the statement admitted at its Parse, unless that statement EXECUTEs a prepared
   * statement that changed since it was judged (its portal would run another body now): then it is refused like a
   * failed Parse. Each run of a statement that changes prepared statements proposes those changes.
   */
  async #execute(frame: Frame): Promise<void> {
    this.#executedSinceSync = true;
    const relay = this.#o.relay;
    const flow = this.#flow;
    const [portal] = readCString(bodyOf(frame), 0);
    const p = this.#planner.portal(portal);
    const changed = this.#planner.changedSinceParse(p);
    if (changed) {
      flow.flush();
      this.#refuseInBatch(await ownRefusalAnswer(this.#o.session, p?.text ?? "", changed));
      flow.flush();
      return;
    }
    if (this.#o.describeBeforeExecute) {
      relay.expect({ kind: "describe", injected: true });
      flow.send(describePortal(portal));
    }
    const settled = this.#planner.executed(p);
    relay.expect({
      kind: "execute",
      track: { text: p?.text ?? "", started: performance.now(), results: 0 },
      ...(settled ? { settled } : {}),
    });
    flow.send(frame.raw);
  }

  async #functionCall(frame: Frame): Promise<void> {
    const oid = bodyOf(frame).readUInt32BE(0);
    const text = `<function call oid ${oid}>`;
    this.#flow.flush();
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
      this.#flow.send(frame.raw);
    } else {
      this.#refuseQuery("function", refusalAnswer(admission));
    }
    this.#flow.flush();
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
   * Records the bound parameters (text as text, binary as hex, detector hits masked), bounded in size and
   * count. False when the recorder asks the producer to wait for its drain.
   */
  #bind(frame: Frame): boolean {
    const bind = readBind(frame, this.#o.paramMasker);
    const text = this.#planner.bound(bind);
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

  #fatal(err: unknown): void {
    if (this.#flow.closed) return;
    this.#flow.stop();
    const message = err instanceof Error ? err.message : String(err);
    this.#o.onFatal(SQLSTATE.protocolViolation, `gatehouse: invalid message: ${message}`);
  }
}
