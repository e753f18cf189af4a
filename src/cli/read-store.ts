import { openEvidenceReader, openStore } from "../core/store/open.js";
import type { Store } from "../core/store/types.js";
import { CliError } from "./cli-error.js";

/** `--data` default for commands that read the evidence directly from a data directory. */
export const DEFAULT_DATA_DIR = process.env["GATEHOUSE_DATA"] ?? "./data";

/** Opens the store read-only (reading evidence must never change it), runs `work`, closes. */
export function withReadOnlyStore<T>(dataDir: string, work: (store: Store) => Promise<T>): Promise<T> {
  return withStore(dataDir, () => openStore({ dataDir, readonly: true }), work);
}

/**
 * Opens the store for reading evidence (tail, replay): the index is first brought up to date with the evidence
 * log's segments (only the index is written). Older data directories are opened read-only.
 */
export function withEvidenceReader<T>(dataDir: string, work: (store: Store) => Promise<T>): Promise<T> {
  return withStore(dataDir, () => openEvidenceReader(dataDir), work);
}

async function withStore<T>(dataDir: string, open: () => Promise<Store>, work: (store: Store) => Promise<T>) {
  let store: Store;
  try {
    store = await open();
  } catch (err) {
    throw new CliError(`cannot open the store in ${dataDir}: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}
