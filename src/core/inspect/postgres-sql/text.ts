/**
 * libpg-query reports statement positions as UTF-8 byte offsets; JavaScript strings index UTF-16 code units.
 * ASCII text (the common case) needs no conversion.
 */
export function byteSlicer(sql: string): (start: number, end: number | undefined) => string {
  if (Buffer.byteLength(sql, "utf8") === sql.length) return (start, end) => sql.slice(start, end);
  const bytes = Buffer.from(sql, "utf8");
  return (start, end) => bytes.subarray(start, end).toString("utf8");
}
