/**
 * Reading segment files: which writers and segments a data directory holds, and the complete lines of a
 * segment with their byte offsets. Used by recovery (writer.ts), the indexer and verify.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { EVIDENCE_DIR, parseLine, segmentFileName, segmentNumber, WRITER_NAME, type ParsedLine } from "./format.js";

export function evidenceDir(dataDir: string): string {
  return join(dataDir, EVIDENCE_DIR);
}

/** The writers whose folders are in DATA/evidence, sorted by name. */
export function listWriters(dataDir: string): string[] {
  const dir = evidenceDir(dataDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && WRITER_NAME.test(d.name))
    .map((d) => d.name)
    .sort();
}

/** A writer's segment numbers in order. */
export function listSegments(writerDir: string): number[] {
  if (!existsSync(writerDir)) return [];
  return readdirSync(writerDir)
    .map(segmentNumber)
    .filter((n): n is number => n !== undefined)
    .sort((a, b) => a - b);
}

export function segmentPath(writerDir: string, n: number): string {
  return join(writerDir, segmentFileName(n));
}

export interface SegmentLine {
  /** The line without its newline. */
  line: string;
  /** Byte offset of the line's first byte in the segment. */
  offset: number;
  /** Byte offset just past its newline. */
  end: number;
}

export interface SegmentChunk {
  lines: SegmentLine[];
  /** Offset just past the last complete line (where reading goes on). */
  end: number;
  /** Bytes after the last complete line, up to `limit` or the end of the file (a write in progress, or torn). */
  trailing: number;
}

const NEWLINE = 0x0a;
const READ_CHUNK = 4 * 1024 * 1024;

/**
 * The complete lines of a segment from byte `from` up to `limit` (default: the file's size), at most
 * `maxBytes` of them (default: all). A line is complete once its newline is there.
 */
export function readSegmentLines(path: string, from = 0, limit?: number, maxBytes = Infinity): SegmentChunk {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const stop = Math.min(limit ?? size, size);
    const lines: SegmentLine[] = [];
    let pos = from;
    let carry: Buffer | undefined;
    let carryStart = from;
    let end = from;
    while (pos < stop && end - from < maxBytes) {
      const want = Math.min(READ_CHUNK, stop - pos);
      const buf = Buffer.allocUnsafe(want);
      const got = readSync(fd, buf, 0, want, pos);
      if (got <= 0) break;
      const data = carry ? Buffer.concat([carry, buf.subarray(0, got)]) : buf.subarray(0, got);
      const base = carry ? carryStart : pos;
      let start = 0;
      for (;;) {
        const nl = data.indexOf(NEWLINE, start);
        if (nl < 0) break;
        lines.push({ line: data.toString("utf8", start, nl), offset: base + start, end: base + nl + 1 });
        start = nl + 1;
        end = base + start;
        if (end - from >= maxBytes) break;
      }
      carry = start < data.length ? Buffer.from(data.subarray(start)) : undefined;
      carryStart = base + start;
      pos += got;
    }
    return { lines, end, trailing: Math.max(0, stop - end) };
  } finally {
    closeSync(fd);
  }
}

/** The lines of a writer's log, newest segment first, until `want` says it has seen enough. */
export function scanBackwards(dir: string, want: (line: ParsedLine) => boolean): void {
  const segments = listSegments(dir);
  for (let i = segments.length - 1; i >= 0; i--) {
    const { lines } = readSegmentLines(segmentPath(dir, segments[i]!));
    for (let j = lines.length - 1; j >= 0; j--) {
      let parsed: ParsedLine;
      try {
        parsed = parseLine(lines[j]!.line);
      } catch {
        continue;
      }
      if (want(parsed)) return;
    }
  }
}
