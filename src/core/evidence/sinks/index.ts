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
import type { AuditSink, SinkConfig } from "./types.js";

export { FileSink } from "./file-sink.js";
export { HttpSink, type HttpSinkOptions } from "./http-sink.js";
export { SyslogSink, FACILITIES, SD_ID, type SyslogSinkOptions } from "./syslog-sink.js";
export { SinkForwarder, type SinkForwarderOptions, type SinkStats } from "./forwarder.js";
export * from "./types.js";

/** Builds one sink per config entry; throws a message naming the entry when one is invalid. */
export function createSinks(configs: readonly SinkConfig[]): AuditSink[] {
  return configs.map((config, i) => {
    try {
      if ("file" in config) return new FileSink(config.file);
      if ("http" in config) return new HttpSink(config.http);
      if ("syslog" in config) return new SyslogSink(config.syslog);
    } catch (err) {
      throw new Error(`audit.sinks[${i}]: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    throw new Error(`audit.sinks[${i}]: expected one of file, http, syslog`);
  });
}
