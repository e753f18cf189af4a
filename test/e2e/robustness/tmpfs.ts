/**
 * A small tmpfs as a gateway's data directory, so that a test can run it out of space for real (ENOSPC from the
 * kernel). Mounting needs root; without it the test fails with that reason rather than skip: a safety test that
 * skips silently would let a green run claim what was never checked.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";

export function mountTmpfs(dir: string, size = "24m"): void {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    const why = String((err as { stderr?: Buffer }).stderr ?? err).trim();
    throw new Error(
      `this test needs a tmpfs it can fill, and mounting one needs root (run the e2e tests as root, as CI does): ${why}`,
    );
  }
}

export function unmountTmpfs(dir: string): void {
  execFileSync("umount", ["-l", dir]);
}

/** Fills the file system with one file until the kernel says ENOSPC; returns the bytes written. */
export function fillDisk(file: string): number {
  const fd = openSync(file, "w");
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}
