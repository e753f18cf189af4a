/** Decoding and rebuilding the result messages the masker and the recorder look into. */
import { readCString } from "./wire.js";

export interface ColumnInfo {
  name: string;
  /** Table OID of the column's source (0 for expressions). */
  tableOid: number;
  /** Attribute number in that table (0 for expressions). */
  attnum: number;
  typeOid: number;
  /** 0 text, 1 binary. */
  format: number;
}

export function parseRowDescription(body: Buffer): ColumnInfo[] {
  const count = body.readInt16BE(0);
  const columns: ColumnInfo[] = [];
  let off = 2;
  for (let i = 0; i < count; i++) {
    const [name, next] = readCString(body, off);
    if (next < 0 || next + 18 > body.length) break;
    columns.push({
      name,
      tableOid: body.readUInt32BE(next),
      attnum: body.readInt16BE(next + 4),
      typeOid: body.readUInt32BE(next + 6),
      format: body.readInt16BE(next + 16),
    });
    off = next + 18;
  }
  return columns;
}

/** DataRow values as views into the message (null for SQL NULL). */
export function parseDataRow(body: Buffer): (Buffer | null)[] {
  const count = body.readInt16BE(0);
  const values: (Buffer | null)[] = [];
  let off = 2;
  for (let i = 0; i < count; i++) {
    const len = body.readInt32BE(off);
    off += 4;
    if (len < 0) values.push(null);
    else {
      values.push(body.subarray(off, off + len));
      off += len;
    }
  }
  return values;
}

/** A complete DataRow message ('D' + length + values). */
export function buildDataRow(values: readonly (Buffer | null)[]): Buffer {
  let size = 4 + 2;
  for (const v of values) size += 4 + (v ? v.length : 0);
  const out = Buffer.allocUnsafe(size + 1);
  out[0] = 0x44; // 'D'
  out.writeInt32BE(size, 1);
  out.writeInt16BE(values.length, 5);
  let off = 7;
  for (const v of values) {
    if (v === null) {
      out.writeInt32BE(-1, off);
      off += 4;
    } else {
      out.writeInt32BE(v.length, off);
      v.copy(out, off + 4);
      off += 4 + v.length;
    }
  }
  return out;
}

/** CommandComplete tag ("SELECT 3", "INSERT 0 1") and the row count it reports, when it reports one. */
export function parseCommandTag(body: Buffer): { tag: string; rows?: number } {
  const [tag] = readCString(body, 0);
  const m = /(\d+)$/.exec(tag);
  return m && /^(SELECT|INSERT|UPDATE|DELETE|MERGE|FETCH|MOVE|COPY)\b/.test(tag)
    ? { tag, rows: Number(m[1]) }
    : { tag };
}
