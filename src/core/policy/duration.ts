/** Durations in config files: `250ms`, `30s`, `5m`, `2h`, `400d`, compounds like `1h30m`, or `0`. */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

const WHOLE = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART = /(\d+)(ms|s|m|h|d)/g;

/** Returns milliseconds, or an error message that says what a valid duration looks like. */
export function parseDuration(input: string | number): number | { error: string } {
  // A bare number other than 0 is ambiguous (seconds? minutes?), so it needs a unit.
  if (input === 0 || input === "0") return 0;
  if (typeof input === "number") {
    return { error: `duration ${input} needs a unit (ms, s, m, h, d), e.g. "${input}s"` };
  }
  const text = input.trim();
  if (!WHOLE.test(text)) {
    return { error: `invalid duration ${JSON.stringify(input)} (expected e.g. 30s, 5m, 2h, 400d, 1h30m or 0)` };
  }
  let total = 0;
  for (const m of text.matchAll(PART)) {
    total += Number(m[1]) * UNIT_MS[m[2] as Unit];
  }
  if (!Number.isSafeInteger(total)) return { error: `duration ${JSON.stringify(input)} is too large` };
  return total;
}

/** The shortest exact spelling of a duration, for printing effective rules (300000 -> "5m"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  let rest = ms;
  let out = "";
  for (const unit of ["d", "h", "m", "s", "ms"] as const) {
    const size = UNIT_MS[unit];
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}
