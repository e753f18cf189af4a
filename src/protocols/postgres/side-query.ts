import { bodyOf, MessageReader } from "./framing.js";
import { parseDataRow } from "./rows.js";
import type { TargetConnection } from "./target.js";
import { parseErrorFields, query } from "./wire.js";

/**
 * A minimal simple-query client for the gateway's own catalog lookups on a dedicated target connection (never
 * on the client's connection, whose protocol state belongs to the client). Text results only.
 */
export class SideQueryConnection {
  readonly #reader: MessageReader;
  #busy: Promise<unknown> = Promise.resolve();

  constructor(private readonly conn: TargetConnection) {
    this.#reader = new MessageReader(conn.socket, conn.leftover);
  }

  /** Runs one statement; queries are serialised on this connection. */
  query(sql: string): Promise<(string | null)[][]> {
    const run = this.#busy.then(() => this.#run(sql));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #run(sql: string): Promise<(string | null)[][]> {
    this.conn.socket.write(query(sql));
    const rows: (string | null)[][] = [];
    let error: string | undefined;
    for (;;) {
      const frame = await this.#reader.typed(256 * 1024 * 1024);
      if (frame.type === "D") rows.push(parseDataRow(bodyOf(frame)).map((v) => (v ? v.toString("utf8") : null)));
      else if (frame.type === "E") error = parseErrorFields(bodyOf(frame)).get("M") ?? "catalog query failed";
      else if (frame.type === "Z") break;
    }
    if (error !== undefined) throw new Error(error);
    return rows;
  }

  close(): void {
    this.#reader.detach();
    this.conn.socket.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
  }
}
