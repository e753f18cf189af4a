/**
 * The compiled CLI for tests that must run it as shipped (plain `node`, no tsx). It is built from the current
 * sources into `.tmp/cli-build/<hash of the sources>/`, once: a lock file makes a second test file (or a second
 * run) wait for the first build instead of compiling under it, a finished build is never rebuilt in place (other
 * sources get another directory), so no test runs half-written output, and a failed build fails the test.
 * `dist/` is not used: it may be stale.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
const BUILDS = join(ROOT, ".tmp", "cli-build");
const LOCK_WAIT_MS = 10 * 60_000;

/** What the build depends on: every non-test source file and the compiler settings. */
function sourceHash(): string {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) files.push(p);
    }
  };
  walk(join(ROOT, "src"));
  files.push(join(ROOT, "tsconfig.json"), join(ROOT, "tsconfig.build.json"), join(ROOT, "package.json"));
  const h = createHash("sha256");
  for (const f of files.sort()) h.update(relative(ROOT, f)).update("\0").update(readFileSync(f)).update("\0");
  return h.digest("hex").slice(0, 16);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes `path` as a lock (exclusive create); a lock left by a dead process is taken over. */
async function lock(path: string): Promise<() => void> {
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(path, "wx");
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(readFileSync(path, { encoding: "utf8", flag: "a+" }).trim());
    if (holder > 0 && !alive(holder)) rmSync(path, { force: true });
    else if (Date.now() > until) throw new Error(`timed out waiting for ${path} (held by pid ${holder})`);
    else await new Promise((r) => setTimeout(r, 200));
  }
}

function tsc(outDir: string): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    const tscBin = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const child = spawn(process.execPath, [tscBin, "-p", "tsconfig.build.json", "--outDir", outDir], { cwd: ROOT });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("close", (code) => done({ code: code ?? -1, output }));
  });
}

/** Removes builds of other sources that nobody has used for a day. */
function prune(keep: string): void {
  for (const e of readdirSync(BUILDS, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name === keep) continue;
    const p = join(BUILDS, e.name);
    if (Date.now() - statSync(p).mtimeMs > 24 * 3_600_000) rmSync(p, { recursive: true, force: true });
  }
}

/**
 * Builds the CLI from the current sources (or reuses that exact build) and returns the path of its launcher,
 * the equivalent of bin/gatehouse.js: run it as `node LAUNCHER args...`.
 */
export async function compiledCli(): Promise<string> {
  const hash = sourceHash();
  const out = join(BUILDS, hash);
  const launcher = join(out, "gatehouse.js");
  const complete = join(out, ".complete");
  if (existsSync(complete)) return launcher;
  mkdirSync(BUILDS, { recursive: true });
  const release = await lock(`${out}.lock`);
  try {
    if (existsSync(complete)) return launcher;
    const tmp = `${out}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const r = await tsc(tmp);
    if (r.code !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`the CLI build (tsc -p tsconfig.build.json) failed with exit status ${r.code}:\n${r.output}`);
    }
    writeFileSync(
      join(tmp, "gatehouse.js"),
      'import { main } from "./cli/main.js";\n\nprocess.exitCode = await main(process.argv);\n',
    );
    writeFileSync(join(tmp, ".complete"), `${new Date().toISOString()}\n`);
    rmSync(out, { recursive: true, force: true }); // an unfinished directory of a crashed run
    renameSync(tmp, out);
    prune(hash);
    return launcher;
  } finally {
    release();
  }
}
