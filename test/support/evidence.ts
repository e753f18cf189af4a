/**
 * The evidence half of a gateway (store, audit log, session recorder) for tests and benchmarks that compose a Gate
 * without Gateway.start, plus the temp directories and keys they use. No vitest imports, so bench/ can use it too.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../../src/core/evidence/audit-log.js";
import { SessionRecorder, type SessionRecorderOptions } from "../../src/core/evidence/recorder.js";
import type { Ed25519KeyPair } from "../../src/core/keys.js";
import { openEvidenceStore, openStore, type OpenStoreOptions } from "../../src/core/store/open.js";
import type { Store } from "../../src/core/store/types.js";

const dirs: string[] = [];

/** A fresh directory under the OS temp dir, removed by cleanupDirs(). */
export function tempDir(prefix = "gatehouse-evidence-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function newKey(): Ed25519KeyPair {
  return generateKeyPairSync("ed25519");
}

export interface EvidenceStack {
  /** The store as opened, not the `wrap`ped one: what a test reads the evidence back from. */
  store: Store;
  audit: AuditLog;
  recorder: SessionRecorder;
  signingKey: Ed25519KeyPair;
  /**
   * Closes the recorder, the log and the store in that order, each even when one before it failed (a test that
   * broke one must not leak the others); rejects with the first failure. A second call returns the first one's outcome.
   */
  close(): Promise<void>;
}

export interface EvidenceStackOptions {
  /**
   * The store: by default the gateway's (the evidence log with its SQLite index, `openEvidenceStore`; only
   * `durability` applies); `legacy: true` opens the SQLite-only store of earlier versions with these options.
   */
  store?: Omit<OpenStoreOptions, "dataDir"> & { legacy?: boolean };
  /** What the log and the recorder write through (fault injection, a slow disk); close() closes the real store. */
  wrap?: (store: Store) => Store;
  recorder?: Omit<SessionRecorderOptions, "signingKey">;
}

/** Opens a store in `dir` with an audit log and a session recorder over it, signed by a new key. */
export async function openEvidenceStack(dir: string, options: EvidenceStackOptions = {}): Promise<EvidenceStack> {
  const { legacy, ...storeOptions } = options.store ?? {};
  const store = legacy
    ? await openStore({ ...storeOptions, dataDir: dir })
    : await openEvidenceStore({
        dataDir: dir,
        ...(storeOptions.durability ? { durability: storeOptions.durability } : {}),
      });
  const through = options.wrap ? options.wrap(store) : store;
  const signingKey = newKey();
  const audit = await AuditLog.open(through, { signingKey });
  const recorder = new SessionRecorder(through, { ...options.recorder, signingKey });
  let closing: Promise<void> | undefined;
  const close = async () => {
    const failures: unknown[] = [];
    for (const c of [recorder, audit, store]) await c.close().catch((err: unknown) => failures.push(err));
    if (failures.length > 0) throw failures[0];
  };
  return { store, audit, recorder, signingKey, close: () => (closing ??= close()) };
}

/** Wraps a store so that every recording write first waits `ms` (a slow disk, for back-pressure tests). */
export function slowRecordingWrites(ms: number): (store: Store) => Store {
  return (real) =>
    new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === "writeRecording") {
          return async (...args: Parameters<Store["writeRecording"]>) => {
            await new Promise((r) => setTimeout(r, ms));
            return target.writeRecording(...args);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
}
