import { eventually } from "../../conformance/eventually.js";

/** Waits until `check` holds, and fails (naming what was awaited) if it does not within `ms`. */
export async function until(check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  if (!(await eventually(check, ms))) throw new Error(`timed out after ${ms} ms waiting for ${check.toString()}`);
}
