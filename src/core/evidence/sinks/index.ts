/**
 * Audit sinks: forward committed audit records to systems outside the gateway (DESIGN.md, `audit.sinks`).
 *
 *   const forwarder = new SinkForwarder(createSinks(config.audit.sinks), { backfill, logger });
 *   const records = await auditLog.append(...);   // committed first: evidence before effect
 *   forwarder.enqueue(records);                    // then forwarded, never blocking or failing the append
 */
import { FileSink } from "./file-sink.js";
import { HttpSink } from "./http-sink.js";
import { SyslogSink } from "./syslog-sink.js";
import type { AuditSinkConfig } from "../../policy/schema.js";
import type { AuditSink } from "./types.js";

export { FileSink } from "./file-sink.js";
export { HttpSink, type HttpSinkOptions } from "./http-sink.js";
export { SyslogSink, FACILITIES, SD_ID, type SyslogSinkOptions } from "./syslog-sink.js";
export { SinkForwarder, type SinkForwarderOptions, type SinkStats } from "./forwarder.js";
export * from "./types.js";

/** Builds one sink per validated `audit.sinks` entry; throws a message naming the entry when one is unusable. */
export function createSinks(configs: readonly AuditSinkConfig[]): AuditSink[] {
  return configs.map((config, i) => {
    try {
      switch (config.type) {
        case "file":
          return new FileSink(config.path);
        case "http":
          return new HttpSink({ url: config.url, headers: config.headers });
        case "syslog": {
          const host = config.host.includes(":") ? `[${config.host}]` : config.host;
          return new SyslogSink({ address: `${config.protocol}://${host}:${config.port}`, facility: config.facility });
        }
      }
    } catch (err) {
      throw new Error(`audit.sinks[${i}]: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  });
}
