import { closeSync, fdatasync, fsyncSync, openSync, constants as fsConstants } from "node:fs";
import { dirname } from "node:path";

/** fs.fdatasync's shape; replaceable so tests can make the disk fail. */
export type FdatasyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

export class WalSyncError extends Error {
  override readonly name = "WalSyncError";
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Makes an in-process SQLite connection's commits durable without blocking the event loop: the connection
 * commits with `synchronous=NORMAL` (written to the OS, no fsync) and every commit then waits here for an
 * fdatasync of the WAL file on libuv's thread pool. Commits that land while one fdatasync runs share the next
 * one (group commit at the file level), so the event loop never waits and the disk sees one flush per group.
 *
 * An fdatasync error is final (the PostgreSQL "fsyncgate" lesson): Linux may drop the failed pages and report
 * success on the next call, so nothing written since can be trusted to be durable. Every waiting and later
 * sync is refused with WalSyncError; the gateway fails closed until it is restarted.
 */
export class WalSync {
  readonly #walPath: string;
  readonly #fdatasync: FdatasyncFn;
  #fd: number | undefined;
  #running = false;
  #waiting: Waiter[] = [];
  #failed: WalSyncError | undefined;
  #closed = false;
  /** fdatasync calls completed (each served every commit that waited for it). */
  syncs = 0;

  constructor(walPath: string, fdatasyncFn: FdatasyncFn = fdatasync) {
    this.#walPath = walPath;
    this.#fdatasync = fdatasyncFn;
  }

  /** Resolves once everything written to the WAL before this call is on disk. */
  sync(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new WalSyncError("store is closed"));
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      if (!this.#running) this.#run();
    });
  }

  #run(): void {
    const group = this.#waiting.splice(0);
    let fd: number | undefined;
    try {
      fd = this.#open();
    } catch (err) {
      this.#fail(group, err);
      return;
    }
    if (fd === undefined) {
      // no WAL yet: SQLite creates it at the first commit that writes a page, so nothing is waiting to be synced
      for (const w of group) w.resolve();
      return;
    }
    this.#running = true;
    this.#fdatasync(fd, (err) => {
      this.#running = false;
      if (err) {
        this.#fail(group, err);
        return;
      }
      this.syncs++;
      for (const w of group) w.resolve();
      if (this.#waiting.length > 0) this.#run();
    });
  }

  /**
   * The WAL exists once a commit wrote a page (a statement that changed nothing on a new database leaves none:
   * undefined). It is opened once:
   * SQLite keeps the same file for as long as a connection is open, rewriting it from the start after a
   * checkpoint rather than replacing it. Its directory entry is made durable once, too (a WAL created since the
   * last directory fsync could otherwise vanish with everything in it).
   */
  #open(): number | undefined {
    if (this.#fd !== undefined) return this.#fd;
    let fd: number;
    try {
      fd = openSync(this.#walPath, fsConstants.O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    const dir = openSync(dirname(this.#walPath), fsConstants.O_RDONLY);
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.#fd = fd;
    return fd;
  }

  #fail(group: Waiter[], err: unknown): void {
    const cause = err instanceof Error ? err.message : String(err);
    this.#failed = new WalSyncError(
      `evidence store: fsync of ${this.#walPath} failed (${cause}); writes since the last good fsync may not be ` +
        `durable, so the store refuses writes until the gateway is restarted`,
      { cause: err },
    );
    for (const w of [...group, ...this.#waiting.splice(0)]) w.reject(this.#failed);
  }

  /** Waits for a running fdatasync, then closes the file; later syncs are refused. */
  async close(): Promise<void> {
    if (this.#running || this.#waiting.length > 0) await this.sync().catch(() => undefined);
    this.#closed = true;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
