/** Member names seen in one open object: a short list searched in place, a set once the object is large. */
interface Level {
  names: string[];
  set: Set<string> | undefined;
}

const SMALL = 16;

/** Records `name` in the level; true when it was there already. */
function seenBefore(level: Level, name: string): boolean {
  if (level.set) {
    if (level.set.has(name)) return true;
    level.set.add(name);
    return false;
  }
  if (level.names.includes(name)) return true;
  level.names.push(name);
  if (level.names.length > SMALL) level.set = new Set(level.names);
  return false;
}

/**
 * Whether a JSON text (already known to be valid) repeats a member name within one object. JSON.parse keeps only the
 * last of them, so a masker working on the parsed value never sees the others; a caller that would pass the
 * original text on must know. Names are compared decoded (`"a"` and `"\u0061"` are the same member).
 */
export function hasDuplicateKeys(text: string): boolean {
  // One level per open container, by depth, reused from object to object (most objects are small, and a fresh set
  // per object would cost more than the search); an array's level is null.
  const levels: (Level | null)[] = [];
  let depth = -1;
  let expectKey = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // the closing quote is the next one not preceded by an odd run of backslashes
      let end = text.indexOf('"', i + 1);
      for (;;) {
        let b = end - 1;
        while (text.charCodeAt(b) === 0x5c) b--;
        if ((end - 1 - b) % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (expectKey) {
        expectKey = false;
        const raw = text.slice(i + 1, end);
        const name = raw.includes("\\") ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (seenBefore(levels[depth] as Level, name)) return true;
      }
      i = end + 1;
      continue;
    }
    if (c === 0x7b /* { */) {
      depth++;
      const level = levels[depth];
      if (level) {
        level.names.length = 0;
        level.set = undefined;
      } else {
        levels[depth] = { names: [], set: undefined };
      }
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      depth++;
      levels[depth] = null;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */) {
      expectKey = levels[depth] !== null;
    }
    i++;
  }
  return false;
}
