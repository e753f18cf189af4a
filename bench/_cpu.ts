/**
 * CPU time of a process or of one thread, for the benchmarks' "CPU per transaction / per record" numbers: what
 * the measured proxy itself spends, not the load generator or the target.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let clockTicks: number | undefined;

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`, 100 on Linux). */
export function clockTicksPerSecond(): number {
  clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  return clockTicks;
}

/**
 * utime + stime of a process (all its threads), in clock ticks, from /proc/PID/stat (fields 14 and 15). The
 * process name in field 2 may hold spaces and parentheses, so fields are counted after its last ')'.
 */
export function processCpuTicks(pid: number | "self", task?: number): number {
  const path = task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`;
  const stat = readFileSync(path, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  return Number(fields[11]) + Number(fields[12]);
}

/** A process's CPU time in microseconds between start() and the returned function's call. */
export function cpuMeter(pid: number | "self"): () => number {
  if (pid === "self") {
    // this process at microsecond resolution: main thread, worker threads and libuv's pool, user + system
    const start = process.cpuUsage();
    return () => {
      const d = process.cpuUsage(start);
      return d.user + d.system;
    };
  }
  const hz = clockTicksPerSecond();
  const start = processCpuTicks(pid);
  return () => ((processCpuTicks(pid) - start) * 1e6) / hz;
}
