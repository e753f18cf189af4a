import type { AuditEventInput } from "../../src/core/evidence/audit-event.js";
import type { Store } from "../../src/core/store/types.js";

// shared with the unit tests outside test/evidence and with bench/
export { cleanupDirs, newKey, tempDir } from "../support/evidence.js";

export function event(i: number): AuditEventInput {
  return {
    type: "request",
    identity: { subject: "ci-bot", kind: "bot", groups: ["ci"], issuer: "gatehouse", token_id: "t1" },
    connection: "app-db",
    session_id: "s-1",
    decision: "allow",
    rule: "connections[0].access",
    data: { statement: `select ${i}`, n: i, nested: { b: [1, "x", null], a: true } },
  };
}

export interface FaultControl {
  failWrites: boolean;
  failAfterCommit: boolean;
  commits: number;
}

/**
 * Wraps a store so tests can make its writes fail on demand, or fail *after* committing (the ambiguous case
 * where a commit reached the disk but the caller saw an error).
 */
export function faultyStore(inner: Store): { store: Store; control: FaultControl } {
  const control: FaultControl = { failWrites: false, failAfterCommit: false, commits: 0 };
  const ioError = () => Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" });
  const overrides: Partial<Store> = {
    async commitAudit(c) {
      if (control.failWrites) throw ioError();
      await inner.commitAudit(c);
      control.commits++;
      if (control.failAfterCommit) throw new Error("connection lost after commit");
    },
    async writeRecording(w) {
      if (control.failWrites) throw ioError();
      await inner.writeRecording(w);
    },
  };
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop in overrides) return overrides[prop as keyof Store];
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store, control };
}
