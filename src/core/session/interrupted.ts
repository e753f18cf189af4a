import type { AuditLog } from "../evidence/audit-log.js";
import { sealPayload, sessionHeadHash } from "../evidence/chain.js";
import type { SessionRecorder } from "../evidence/recorder.js";
import type { SessionRecord } from "../evidence/records.js";
import type { Store } from "../store/types.js";

export const INTERRUPTED_REASON = "interrupted: gateway restarted";

/**
 * Ends the sessions a previous run of this gateway never closed (a crash, kill -9, power loss): each gets a
 * `session.end` marked interrupted and its recording a seal over the events that were stored, so `audit verify`
 * and replay can tell an interrupted session from one still running. Call it at start, before any listener
 * opens. With an evidence log it touches only the sessions of the restarting writer (and of the legacy tables).
 */
export async function endInterruptedSessions(
  store: Store,
  audit: AuditLog,
  recorder: SessionRecorder,
): Promise<number> {
  let ended = 0;
  let afterId: string | undefined;
  for (;;) {
    const page = await store.listSessions({
      sealed: false,
      limit: 200,
      ...(afterId ? { afterId } : {}),
      // another running process's sessions are not interrupted: only this writer's (and legacy ones)
      ...(store.writer !== undefined ? { writer: store.writer } : {}),
    });
    if (page.length === 0) return ended;
    for (const session of page) {
      await endOne(store, audit, recorder, session);
      ended++;
    }
    afterId = page.at(-1)?.session_id;
  }
}

async function endOne(store: Store, audit: AuditLog, recorder: SessionRecorder, session: SessionRecord): Promise<void> {
  // the seal covers exactly the events that reached the store: the chain up to there is intact
  let count = 0;
  let lastHash = sessionHeadHash(session);
  for (;;) {
    const events = await store.readRecordingEvents(session.session_id, { fromSeq: count + 1, limit: 1000 });
    const last = events.at(-1);
    if (!last) break;
    count = last.seq;
    lastHash = last.hash;
  }
  await audit.append({
    type: "session.end",
    session_id: session.session_id,
    connection: session.connection,
    ...(session.identity ? { identity: session.identity } : {}),
    data: { reason: INTERRUPTED_REASON, interrupted: true, recorded_events: count },
  });
  const payload = sealPayload({
    session_id: session.session_id,
    count,
    last_hash: lastHash,
    ended_at: new Date().toISOString(),
    reason: INTERRUPTED_REASON,
  });
  await store.sealSession({ ...payload, ...recorder.sign(payload) });
}
