import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, isIPv6, type Socket } from "node:net";
import { hostname } from "node:os";
import type { AuditRecord } from "../audit-event.js";
import { canonicalJson } from "../canonical.js";
import { RetryableSinkError, type AuditSink } from "./types.js";

/** RFC 5424 section 6.2.1 facility codes by their usual names. */
export const FACILITIES: Readonly<Record<string, number>> = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  ntp: 12,
  security: 13,
  console: 14,
  clock: 15,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

const SEVERITY_WARNING = 4;
const SEVERITY_INFO = 6;
/** Refusals and failed logins are what a SIEM alerts on: send them as warnings. */
const WARNING_TYPES = new Set(["request.blocked", "auth.failed", "approval.denied"]);
/** SD-ID `name@PEN`; 32473 is the example enterprise number of RFC 5612 (no private number is registered). */
export const SD_ID = "gatehouse@32473";
/** Largest UDP payload we send whole; bigger records go as a stub with seq and hash (the store has the rest). */
const MAX_UDP_BYTES = 65_000;

export interface SyslogSinkOptions {
  /** `udp://host:port` or `tcp://host:port`. */
  address: string;
  /** Facility name (default `auth`, as in the config schema: security/authorization messages). */
  facility?: string;
  hostname?: string;
  appName?: string;
}

/**
 * RFC 5424 messages, one per record: MSGID is the event type, structured data carries seq/hash/prev_hash, and
 * MSG is the record as canonical JSON (no BOM, so JSON parsers take it as is; RFC 5424 allows MSG-ANY).
 * UDP (RFC 5426): one datagram per record. TCP (RFC 6587): octet-counting framing `LEN SP MSG`, one connection
 * reused across batches and re-opened after an error.
 */
export class SyslogSink implements AuditSink {
  readonly name: string;
  readonly #transport: "udp" | "tcp";
  readonly #host: string;
  readonly #port: number;
  readonly #facility: number;
  readonly #hostname: string;
  readonly #appName: string;
  #udp: UdpSocket | undefined;
  #tcp: Promise<Socket> | undefined;

  constructor(options: SyslogSinkOptions) {
    const parsed = parseAddress(options.address);
    this.#transport = parsed.transport;
    this.#host = parsed.host;
    this.#port = parsed.port;
    const facility = FACILITIES[options.facility ?? "auth"];
    if (facility === undefined) {
      throw new Error(
        `syslog sink: unknown facility "${options.facility}" (one of ${Object.keys(FACILITIES).join(", ")})`,
      );
    }
    this.#facility = facility;
    this.#hostname = printable(options.hostname ?? hostname(), 255) || "-";
    this.#appName = printable(options.appName ?? "gatehouse", 48) || "-";
    this.name = `syslog:${options.address}`;
  }

  /** One RFC 5424 message (without transport framing). */
  format(record: AuditRecord, msg = canonicalJson(record)): string {
    const severity = WARNING_TYPES.has(record.type) ? SEVERITY_WARNING : SEVERITY_INFO;
    const pri = this.#facility * 8 + severity;
    const msgid = printable(record.type, 32) || "-";
    const sd = `[${SD_ID} seq="${record.seq}" hash="${sdEscape(record.hash)}" prev_hash="${sdEscape(record.prev_hash)}"]`;
    return `<${pri}>1 ${record.time} ${this.#hostname} ${this.#appName} ${process.pid} ${msgid} ${sd} ${msg}`;
  }

  async deliver(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.#transport === "udp") {
      for (const r of records) await this.#sendUdp(this.#udpMessage(r));
      return;
    }
    const frames = records.map((r) => {
      const msg = Buffer.from(this.format(r), "utf8");
      return Buffer.concat([Buffer.from(`${msg.length} `, "ascii"), msg]);
    });
    await this.#writeTcp(Buffer.concat(frames));
  }

  async close(): Promise<void> {
    const udp = this.#udp;
    this.#udp = undefined;
    if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
    const tcp = this.#tcp;
    this.#tcp = undefined;
    if (tcp) {
      const sock = await tcp.catch(() => undefined);
      if (sock) await new Promise<void>((resolve) => sock.end(() => resolve()));
    }
  }

  #udpMessage(record: AuditRecord): Buffer {
    const whole = Buffer.from(this.format(record), "utf8");
    if (whole.length <= MAX_UDP_BYTES) return whole;
    const stub = canonicalJson({ seq: record.seq, type: record.type, hash: record.hash, truncated: true });
    return Buffer.from(this.format(record, stub), "utf8");
  }

  #sendUdp(message: Buffer): Promise<void> {
    this.#udp ??= createSocket(isIPv6(this.#host) ? "udp6" : "udp4").unref();
    const sock = this.#udp;
    return new Promise((resolve, reject) => {
      sock.send(message, this.#port, this.#host, (err) =>
        err ? reject(new RetryableSinkError(`syslog udp send: ${err.message}`, undefined, { cause: err })) : resolve(),
      );
    });
  }

  async #writeTcp(data: Buffer): Promise<void> {
    this.#tcp ??= this.#connect();
    let sock: Socket;
    try {
      sock = await this.#tcp;
    } catch (err) {
      this.#tcp = undefined;
      throw new RetryableSinkError(`syslog tcp connect ${this.#host}:${this.#port}: ${(err as Error).message}`);
    }
    try {
      await new Promise<void>((resolve, reject) => sock.write(data, (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      sock.destroy();
      this.#tcp = undefined;
      throw new RetryableSinkError(`syslog tcp write: ${(err as Error).message}`);
    }
  }

  #connect(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const sock = connect({ host: this.#host, port: this.#port });
      sock.setNoDelay(true);
      sock.once("connect", () => {
        sock.removeListener("error", reject);
        // A later error or close (receiver restarted) drops the cached connection; the next batch reconnects.
        const forget = (): void => {
          if (this.#tcp && sock.destroyed) this.#tcp = undefined;
        };
        sock.on("error", () => sock.destroy());
        sock.on("close", forget);
        sock.resume(); // the receiver does not talk back; do not let anything it sends pile up
        resolve(sock);
      });
      sock.once("error", reject);
    });
  }
}

function parseAddress(address: string): { transport: "udp" | "tcp"; host: string; port: number } {
  const m = /^(udp|tcp):\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})\/?$/.exec(address);
  const port = Number(m?.[3]);
  if (!m || !m[1] || !m[2] || port < 1 || port > 65535) {
    throw new Error(`syslog sink: address must be udp://host:port or tcp://host:port, got "${address}"`);
  }
  return { transport: m[1] as "udp" | "tcp", host: m[2].replace(/^\[|\]$/g, ""), port };
}

/** RFC 5424 header fields are PRINTUSASCII (33..126) with a maximum length. */
function printable(value: string, max: number): string {
  return value.replace(/[^\x21-\x7e]/g, "_").slice(0, max);
}

/** PARAM-VALUE escaping: `"`, `\` and `]` are backslash-escaped. */
function sdEscape(value: string): string {
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}
