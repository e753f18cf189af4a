import { buildDataRow, parseDataRow, type ColumnInfo } from "./rows.js";

/** What this adapter needs from the core masker (src/core/masking). */
export interface MaskerLike {
  readonly enabled: boolean;
  readonly hasColumnRules: boolean;
  readonly hasDetectors: boolean;
  columnMatches(column: { schema: string; table: string; column: string }): boolean;
  maskText(text: string): { text: string; hits: unknown } | undefined;
}

export interface SourceColumn {
  schema: string;
  table: string;
  column: string;
}

/** Resolves RowDescription origins (table OID, attribute number) to the true source columns. */
export interface ColumnResolver {
  /** Synchronous answer when every origin is cached, else a promise. */
  resolve(origins: readonly { tableOid: number; attnum: number }[]): SourceColumn[][] | Promise<SourceColumn[][]>;
}

/** Per column: what happens to its values. */
export interface RowPlan {
  /** Replace the value: a Buffer is the replacement, null means SQL NULL. */
  replace: (Buffer | null | undefined)[];
  /** Run content detectors over this (text-format, textual) column. */
  detect: boolean[];
  /** Names for the recording: which columns were masked. */
  maskedColumns: string[];
}

/** Text-like types whose text value can be replaced by the mask string and stay valid (text, varchar, bpchar, name, unknown). */
const TEXTUAL = new Set([25, 1043, 1042, 19, 705]);
/** Types whose text representation content detectors scan (textual plus json, jsonb, xml). */
const SCANNABLE = new Set([...TEXTUAL, 114, 3802, 142]);

/**
 * Plans masking for one result. Column rules replace values of matched columns: text-format values of textual
 * types become the mask string; anything else (numbers, binary format) becomes NULL so the client still receives
 * a value its type accepts. Detectors scan text-format textual/JSON values. Undefined plan: pass rows through.
 */
export function planMasking(
  masker: MaskerLike,
  columns: readonly ColumnInfo[],
  sources: readonly SourceColumn[][],
  maskText: string,
): RowPlan | undefined {
  const replace: RowPlan["replace"] = [];
  const detect: boolean[] = [];
  const maskedColumns: string[] = [];
  let any = false;
  columns.forEach((c, i) => {
    const matched = masker.hasColumnRules && (sources[i] ?? []).some((s) => masker.columnMatches(s));
    if (matched) {
      any = true;
      maskedColumns.push(c.name);
      replace.push(c.format === 0 && TEXTUAL.has(c.typeOid) ? Buffer.from(maskText) : null);
      detect.push(false);
    } else {
      replace.push(undefined);
      const scan = masker.hasDetectors && c.format === 0 && SCANNABLE.has(c.typeOid);
      detect.push(scan);
      any ||= scan;
    }
  });
  return any ? { replace, detect, maskedColumns } : undefined;
}

/** Applies a plan to one DataRow body; returns the new message, or undefined when nothing changed. */
export function maskRow(masker: MaskerLike, plan: RowPlan, body: Buffer): { raw: Buffer; hits: number } | undefined {
  const values = parseDataRow(body);
  let changed = false;
  let hits = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    const r = plan.replace[i];
    if (r !== undefined) {
      values[i] = r;
      changed = true;
      hits++;
    } else if (plan.detect[i]) {
      const masked = masker.maskText(v.toString("utf8"));
      if (masked) {
        values[i] = Buffer.from(masked.text, "utf8");
        changed = true;
        hits++;
      }
    }
  }
  return changed ? { raw: buildDataRow(values), hits } : undefined;
}
