import { join } from "node:path";
import type { AuditEventInput } from "../core/evidence/audit-event.js";
import { AuditLog } from "../core/evidence/audit-log.js";
import { SessionRecorder } from "../core/evidence/recorder.js";
import { createSinks, SinkForwarder, type SinkConfig } from "../core/evidence/sinks/index.js";
import { GatewayTokenIssuer, IdentityVerifier } from "../core/identity/index.js";
import { loadOrCreateEd25519Key } from "../core/keys.js";
import { CompiledPolicy } from "../core/policy/decide.js";
import type { AuditSinkConfig, GatehouseConfig, HostPort } from "../core/policy/schema.js";
import { Gate } from "../core/session/gate.js";
import { openStore } from "../core/store/open.js";
import type { Store } from "../core/store/types.js";
import { startApi, type ApiServer } from "../api/server.js";
import { PROTOCOL_LISTENERS, type ListenerReport } from "./listeners.js";

export const VERSION = "0.1.0";

export interface GatewayOptions {
  /** Override the API address (tests pass port 0). */
  apiListen?: HostPort;
}

/**
 * A running gateway: the store, the evidence writers, identity, policy and the gate composed once, plus the
 * listeners. Protocol adapters plug in through `PROTOCOL_LISTENERS`; the core never learns about them.
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
  ) {}

  static async start(config: GatehouseConfig, options: GatewayOptions = {}): Promise<Gateway> {
    const store = await openStore({ dataDir: config.data });
    const closeOnFailure: (() => Promise<void>)[] = [() => store.close()];
    try {
      const signingKey = loadOrCreateEd25519Key(join(config.data, "keys", "audit-signing.pem"));
      const sinks = new SinkForwarder(createSinks(config.audit.sinks.map(toSinkConfig)), {
        backfill: (fromSeq, limit) => store.readAudit({ fromSeq, limit }),
      });
      closeOnFailure.unshift(() => sinks.close());
      const audit = await AuditLog.open(store, {
        signingKey,
        onCommitted: (records) => sinks.enqueue(records),
        ...(config.audit.checkpoint_every !== undefined ? { checkpointEvery: config.audit.checkpoint_every } : {}),
      });
      closeOnFailure.unshift(() => audit.close());
      const recorder = new SessionRecorder(store, { signingKey });
      closeOnFailure.unshift(() => recorder.close());
      const tokens = GatewayTokenIssuer.fromDataDir(config.data);
      const verifier = new IdentityVerifier(config.identity, { gatewayIssuer: { publicKey: tokens.publicKey } });
      const policy = CompiledPolicy.for(config);
      const gate = new Gate({ policy, audit, recorder });
      const api = await startApi({ address: options.apiListen ?? config.listen.api, verifier, audit, store });
      closeOnFailure.unshift(() => api.close());
      const listeners = PROTOCOL_LISTENERS.map((p) => p.report(config));
      await audit.append({
        type: "gateway.start",
        data: {
          version: VERSION,
          api: api.address,
          connections: config.connections.map((c) => ({ name: c.name, type: c.type })),
          listeners: listeners.map((l) => ({ protocol: l.protocol, address: l.address, state: l.state })),
        },
      });
      return new Gateway(config, store, audit, recorder, verifier, tokens, gate, api, listeners, sinks);
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
    await this.api.close();
    await this.audit.append({ type: "gateway.stop", data: { reason } }).catch(() => undefined);
    await this.recorder.close();
    await this.audit.close();
    // after the log closed, so the stop event and the final records are forwarded too
    await this.sinks.close();
    await this.store.close();
  }
}

function toSinkConfig(c: AuditSinkConfig): SinkConfig {
  switch (c.type) {
    case "file":
      return { file: c.path };
    case "http":
      return { http: { url: c.url, headers: c.headers } };
    case "syslog": {
      const host = c.host.includes(":") ? `[${c.host}]` : c.host;
      return { syslog: { address: `${c.protocol}://${host}:${c.port}`, facility: c.facility } };
    }
  }
}
