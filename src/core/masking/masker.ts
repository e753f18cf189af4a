import type { MaskingConfig } from "../policy/schema.js";
import { ColumnRules, type ColumnRef } from "./columns.js";
import { DETECTORS, type Detector, type Span } from "./detectors/index.js";
import { applyToBytes, applyToString, hitsOf, resolve, type DetectorHit } from "./spans.js";

/** What a masked text column becomes. Adapters choose the replacement for non-text types (NULL for numbers). */
export const COLUMN_MASK = "********";

/**
 * One connection's masking rules, compiled once (per connection or per policy load) and then asked per column
 * (column rules, at RowDescription) and per value (content detectors, on every text value).
 */
export class Masker {
  readonly enabled: boolean;
  readonly hasColumnRules: boolean;
  readonly hasDetectors: boolean;
  private readonly columns: ColumnRules | undefined;
  private readonly detectors: readonly Detector[];
  private readonly minLength: number;

  private constructor(config: MaskingConfig | undefined) {
    const columns = config?.columns ?? [];
    const wanted = new Set(config?.detectors ?? []);
    this.columns = columns.length > 0 ? new ColumnRules(columns) : undefined;
    this.detectors = DETECTORS.filter((d) => wanted.has(d.name));
    this.hasColumnRules = this.columns !== undefined;
    this.hasDetectors = this.detectors.length > 0;
    this.enabled = this.hasColumnRules || this.hasDetectors;
    this.minLength = Math.min(...this.detectors.map((d) => d.minLength));
  }

  static from(config: MaskingConfig | undefined): Masker {
    return new Masker(config);
  }

  /** True when the column, identified by its true source (not its alias in the result), must be masked. */
  columnMatches(ref: ColumnRef): boolean {
    return this.columns !== undefined && this.columns.matches(ref);
  }

  /** Content detectors over one text value; undefined (and no allocation) when nothing was found. */
  maskText(value: string): { text: string; hits: DetectorHit[] } | undefined {
    const spans = this.scan(value);
    return spans && { text: applyToString(value, spans), hits: hitsOf(spans) };
  }

  /**
   * The same over UTF-8 bytes. Detection runs on the latin1 view (one char per byte), which is exact because every
   * detector matches ASCII only and treats bytes >= 0x80 alike; bytes outside a hit are copied unchanged, so
   * invalid UTF-8 elsewhere in the value survives.
   */
  maskBytes(value: Buffer): { bytes: Buffer; hits: DetectorHit[] } | undefined {
    if (value.length < this.minLength) return undefined;
    const spans = this.scan(value.toString("latin1"));
    return spans && { bytes: applyToBytes(value, spans), hits: hitsOf(spans) };
  }

  /**
   * The hot path: a value without candidates costs each enabled detector's pre-filter and allocates nothing.
   * minLength is Infinity without detectors, so a disabled masker returns at the first comparison.
   */
  private scan(text: string): Span[] | undefined {
    if (text.length < this.minLength) return undefined;
    let spans: Span[] | undefined;
    for (const d of this.detectors) {
      if (text.length < d.minLength || !d.mayContain(text)) continue;
      spans ??= [];
      d.find(text, spans);
    }
    return spans && spans.length > 0 ? resolve(spans) : undefined;
  }
}

export type { ColumnRef, DetectorHit };
