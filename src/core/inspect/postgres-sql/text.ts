/**
 * libpg-query reports statement positions as UTF-8 byte offsets; JavaScript strings index UTF-16 code units.
 * ASCII text (the common case) needs no conversion.
 */
export function byteSlicer(sql: string): (start: number, end: number | undefined) => string {
  if (Buffer.byteLength(sql, "utf8") === sql.length) return (start, end) => sql.slice(start, end);
  const bytes = Buffer.from(sql, "utf8");
  return (start, end) => bytes.subarray(start, end).toString("utf8");
}

/**
 * UTF-8 byte offset -> string index, for offsets at character boundaries (which libpg-query's locations are). An
 * unpaired surrogate counts as the three bytes of U+FFFD, as Buffer encodes it.
 */
export function byteToIndex(sql: string): (byteOffset: number) => number {
  if (Buffer.byteLength(sql, "utf8") === sql.length) return (b) => b;
  const indexes: number[] = [];
  for (let i = 0; i < sql.length; i++) {
    const c = sql.charCodeAt(i);
    const next = sql.charCodeAt(i + 1);
    const pair = c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
    const bytes = c < 0x80 ? 1 : c < 0x800 ? 2 : pair ? 4 : 3;
    for (let k = 0; k < bytes; k++) indexes.push(i);
    if (pair) i++;
  }
  const total = sql.length;
  return (b) => (b >= indexes.length ? total : (indexes[b] as number));
}
