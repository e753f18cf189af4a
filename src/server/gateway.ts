import { join } from "node:path";
import type { AuditEventInput } from "../core/evidence/audit-event.js";
import { createApprovals, type ApprovalWorkflow } from "../core/approvals/index.js";
import { AuditLog } from "../core/evidence/audit-log.js";
import { SessionRecorder } from "../core/evidence/recorder.js";
import { createSinks, SinkForwarder } from "../core/evidence/sinks/index.js";
import { GatewayTokenIssuer, IdentityVerifier } from "../core/identity/index.js";
import { loadOrCreateEd25519Key } from "../core/keys.js";
import { CompiledPolicy } from "../core/policy/decide.js";
import type { GatehouseConfig, HostPort } from "../core/policy/schema.js";
import { Gate } from "../core/session/gate.js";
import { endInterruptedSessions } from "../core/session/interrupted.js";
import { openEvidenceStore } from "../core/store/open.js";
import type { Store } from "../core/store/types.js";
import { startApi, type ApiServer } from "../api/server.js";
import { DirectConnector, type ListenKey, type RunningAdapter } from "../core/adapter/index.js";
import { MaskerCache } from "../core/masking/index.js";
import type { ConnectionType } from "../core/policy/vocabulary.js";
import { ADAPTERS, reportListener, type ListenerReport } from "./adapters.js";
import { startAgentEndpoint, type AgentEndpoint } from "../agent/endpoint.js";
import { AgentRegistry } from "../agent/registry.js";
import { RoutingConnector } from "../agent/routing-connector.js";

export const VERSION = "0.1.0";

interface RunningListener extends RunningAdapter {
  protocol: ConnectionType;
}

export interface GatewayOptions {
  /** Override the API address (tests pass port 0). */
  apiListen?: HostPort;
  /** Override protocol listener addresses (tests pass port 0). */
  listen?: Partial<Record<ListenKey, HostPort>>;
  /** Override the agent listener's address (tests pass port 0). */
  agentsListen?: HostPort;
  /** Where adapters report connection-level problems (default: stderr). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * A running gateway: the store, the evidence writers, identity, policy and the gate composed once, plus the
 * listeners. Protocol adapters plug in through the registry in `adapters.ts`; the core never learns about them.
 */
export class Gateway {
  private constructor(
    readonly config: GatehouseConfig,
    readonly store: Store,
    readonly audit: AuditLog,
    readonly recorder: SessionRecorder,
    readonly verifier: IdentityVerifier,
    readonly tokens: GatewayTokenIssuer,
    readonly gate: Gate,
    readonly api: ApiServer,
    readonly listeners: ListenerReport[],
    readonly sinks: SinkForwarder,
    private readonly running: RunningListener[],
    readonly approvals: ApprovalWorkflow,
    readonly agents: AgentRegistry,
    /** The agent listener, when `listen.agents` is set. */
    readonly agentEndpoint: AgentEndpoint | undefined,
  ) {}

  /** The bound address of a protocol listener ("host:port"), if it runs. */
  address(protocol: ConnectionType): string | undefined {
    return this.running.find((r) => r.protocol === protocol)?.address;
  }

  static async start(config: GatehouseConfig, options: GatewayOptions = {}): Promise<Gateway> {
    const durability = config.audit.durability;
    // evidence goes to this process's segment log (one write per loop turn, fdatasync off the loop); a worker
    // thread indexes it into SQLite for readers (docs/evidence.md)
    const store = await openEvidenceStore({ dataDir: config.data, durability });
    const log =
      options.log ??
      ((msg: string, fields?: Record<string, unknown>) => console.error(`gatehouse: ${msg}`, fields ?? ""));
    const recovery = store.recovery;
    if (recovery.cutBytes > 0) {
      log(`evidence log ${store.writer}: cut a torn tail of ${recovery.cutBytes} bytes left by a crash`, {
        segment: recovery.cutAt?.segment,
        offset: recovery.cutAt?.offset,
      });
    }
    const closeOnFailure: (() => Promise<void>)[] = [() => store.close()];
    try {
      const signingKey = loadOrCreateEd25519Key(join(config.data, "keys", "audit-signing.pem"));
      const sinks = new SinkForwarder(createSinks(config.audit.sinks), {
        backfill: (fromSeq, limit) => store.readAudit({ writer: store.writer, fromSeq, limit }),
      });
      closeOnFailure.unshift(() => sinks.close());
      const audit = await AuditLog.open(store, {
        signingKey,
        onCommitted: (records) => sinks.enqueue(records),
        onCheckpoint: (checkpoint) => sinks.enqueueCheckpoint(checkpoint),
        ...(config.audit.checkpoint_every !== undefined ? { checkpointEvery: config.audit.checkpoint_every } : {}),
      });
      closeOnFailure.unshift(() => audit.close());
      const recorder = new SessionRecorder(store, { signingKey });
      closeOnFailure.unshift(() => recorder.close());
      // before any listener opens: sessions a crashed run left open are ended as interrupted
      const interrupted = await endInterruptedSessions(store, audit, recorder);
      const tokens = GatewayTokenIssuer.fromDataDir(config.data);
      const verifier = new IdentityVerifier(config.identity, { gatewayIssuer: { publicKey: tokens.publicKey } });
      const policy = CompiledPolicy.for(config);
      const approvals = createApprovals(config.approvals, {
        store,
        audit,
        ...(options.log ? { log: options.log } : {}),
      });
      await approvals.service.start(); // held requests of a previous run become cancelled
      closeOnFailure.unshift(async () => approvals.service.stop());
      const gate = new Gate({ policy, audit, recorder, approvals, grants: approvals });
      const agents = new AgentRegistry(config);
      const api = await startApi({
        agents: () => agents.status(),
        address: options.apiListen ?? config.listen.api,
        verifier,
        audit,
        store,
        approvals: { workflow: approvals, policy },
      });
      closeOnFailure.unshift(() => api.close());
      const running: RunningListener[] = [];
      closeOnFailure.unshift(async () => {
        for (const r of running) await r.close();
      });
      const listeners: ListenerReport[] = [];
      // agents may dial in as soon as the listener is up; they are admitted once gateway.start is on record
      const agentsListen = options.agentsListen ?? config.listen.agents;
      let agentEndpoint: AgentEndpoint | undefined;
      if (agentsListen) {
        agentEndpoint = await startAgentEndpoint({
          config,
          listen: agentsListen,
          registry: agents,
          audit: (event) => audit.append(event),
          log,
          version: VERSION,
        });
        const endpoint = agentEndpoint;
        closeOnFailure.unshift(() => endpoint.close());
      }
      // what every adapter shares: how targets are reached (directly or through an agent), and compiled masking rules
      const connector = new RoutingConnector(new DirectConnector(), agents);
      const maskers = new MaskerCache();
      // protocols that share a listener (kubernetes and http) share its adapter: started once, closed once
      const started = new Map<string, RunningAdapter>();
      for (const entry of ADAPTERS) {
        const listen = options.listen?.[entry.listenKey] ?? config.listen[entry.listenKey];
        if (entry.load && listen) {
          let r = started.get(entry.listenKey);
          if (r) running.push({ protocol: entry.protocol, address: r.address, close: async () => undefined });
          else {
            const adapter = await entry.load();
            r = await adapter.start({ config, gate, verifier, listen, connector, maskers, log });
            started.set(entry.listenKey, r);
            running.push({ protocol: entry.protocol, ...r });
          }
          listeners.push(reportListener(entry, config, r.address));
        } else listeners.push(reportListener(entry, config));
      }
      await audit.append({
        type: "gateway.start",
        data: {
          version: VERSION,
          api: api.address,
          connections: config.connections.map((c) => ({ name: c.name, type: c.type })),
          listeners: listeners.map((l) => ({ protocol: l.protocol, address: l.address, state: l.state })),
          ...(agentEndpoint ? { agents: { address: agentEndpoint.address, pin: agentEndpoint.pin } } : {}),
          interrupted_sessions: interrupted,
          writer: store.writer,
          ...(recovery.cutBytes > 0
            ? {
                torn_tail: {
                  bytes: recovery.cutBytes,
                  segment: recovery.cutAt?.segment,
                  offset: recovery.cutAt?.offset,
                },
              }
            : {}),
        },
      });
      agentEndpoint?.admit();
      return new Gateway(
        config,
        store,
        audit,
        recorder,
        verifier,
        tokens,
        gate,
        api,
        listeners,
        sinks,
        running,
        approvals,
        agents,
        agentEndpoint,
      );
    } catch (err) {
      for (const close of closeOnFailure) await close().catch(() => undefined);
      throw err;
    }
  }

  /** Appends an event in the gateway's own name (token issued, policy changed...). */
  record(event: AuditEventInput): Promise<unknown> {
    return this.audit.append(event);
  }

  /** Stops accepting work, records the stop, signs a final checkpoint and closes the store. */
  async stop(reason = "shutdown"): Promise<void> {
    // listeners first: each close() resolves only once its sessions have ended (session.end, recording seal),
    // so those land while the evidence writers still run, and before gateway.stop
    for (const r of this.running) await r.close().catch(() => undefined);
    // after the sessions that used them; each tunnel's agent.disconnected lands before gateway.stop
    await this.agentEndpoint?.close().catch(() => undefined);
    await this.api.close();
    this.approvals.service.stop();
    await this.audit.append({ type: "gateway.stop", data: { reason } }).catch(() => undefined);
    // A writer that fails to close is reported, but the rest still close: the log gets its final checkpoint
    // and the store's writer thread does not keep the process alive.
    let failed: { err: unknown } | undefined;
    const keep = (err: unknown) => void (failed ??= { err });
    await this.recorder.close().catch(keep);
    await this.audit.close().catch(keep);
    // after the log closed, so the stop event and the final records are forwarded too
    await this.sinks.close().catch(keep);
    await this.store.close().catch(keep);
    if (failed) throw failed.err;
  }
}
