/**
 * Fault injection on a live store (a running Gateway's, or a test's): its recording writes, or its audit commits,
 * fail as on a broken disk while the other writer keeps writing, so what a test sees is that writer's own failure
 * handling. The method is shadowed on the instance, so whatever already holds the store sees it.
 */
import type { RecordingWrite, Store } from "../../src/core/store/types.js";

export interface RecordingFault {
  /** Recording writes refused so far. */
  readonly refused: number;
  /** Writes go through again (retries of what was refused included). */
  restore(): void;
}

/**
 * From now on `store.writeRecording` rejects (SQLITE_IOERR) for every write `when` selects (default: all). The
 * method is shadowed on the instance, so whatever already holds the store (the gateway's recorder) sees it.
 */
export function failRecordingWrites(store: Store, when: (w: RecordingWrite) => boolean = () => true): RecordingFault {
  const write = store.writeRecording.bind(store);
  let refused = 0;
  store.writeRecording = (w) => {
    if (!when(w)) return write(w);
    refused++;
    return Promise.reject(Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" }));
  };
  return {
    get refused() {
      return refused;
    },
    restore: () => void Reflect.deleteProperty(store, "writeRecording"),
  };
}

/** From now on `store.commitAudit` rejects with `error` (default: ENOSPC), until restore(). */
export function failAuditCommits(
  store: Store,
  error: Error = Object.assign(new Error("no space left on device"), { code: "ENOSPC" }),
): { readonly refused: number; restore(): void } {
  let refused = 0;
  store.commitAudit = () => {
    refused++;
    return Promise.reject(error);
  };
  return {
    get refused() {
      return refused;
    },
    // the shadowing own property goes; the store's own method shows through again
    restore: () => void Reflect.deleteProperty(store, "commitAudit"),
  };
}
