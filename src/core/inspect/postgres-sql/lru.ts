/**
 * A least-recently-used map bounded by entry count and by total key length, so that a stream of huge distinct
 * queries cannot grow the cache past a fixed budget. Keys longer than a sixteenth of the budget are not cached.
 */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  private chars = 0;
  /** The most recently used key: hitting it again needs no reordering (one hot statement shape, as pgbench -S). */
  private newest: string | undefined;

  constructor(
    readonly maxEntries: number,
    readonly maxChars: number,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined && key !== this.newest) {
      // Map keeps insertion order: re-inserting makes this the newest entry
      this.map.delete(key);
      this.map.set(key, value);
      this.newest = key;
    }
    return value;
  }

  set(key: string, value: V): void {
    if (this.maxEntries <= 0 || key.length > this.maxChars / 16) return;
    if (this.map.delete(key)) this.chars -= key.length;
    this.map.set(key, value);
    this.newest = key;
    this.chars += key.length;
    while (this.map.size > this.maxEntries || this.chars > this.maxChars) {
      const oldest = this.map.keys().next();
      if (oldest.done === true) break;
      this.map.delete(oldest.value);
      this.chars -= oldest.value.length;
    }
  }
}
