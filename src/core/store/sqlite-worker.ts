/**
 * The SQLite writer thread. It owns the one read-write connection so that each commit's fsync blocks this
 * thread instead of the gateway's event loop. Protocol: see sqlite-protocol.ts.
 */
import { parentPort, workerData } from "node:worker_threads";
import { serializeError, type WorkerRequest, type WorkerResponse } from "./sqlite-protocol.js";
import { SqliteSession, type SqliteOpenOptions } from "./sqlite-session.js";

const port = parentPort;
if (port === null) throw new Error("sqlite-worker must run in a worker thread");

let session: SqliteSession | undefined;
try {
  session = new SqliteSession(workerData as SqliteOpenOptions);
  port.postMessage({ id: 0, ok: true } satisfies WorkerResponse);
} catch (err) {
  port.postMessage({ id: 0, ok: false, error: serializeError(err) } satisfies WorkerResponse);
}

port.on("message", (req: WorkerRequest) => {
  let reply: WorkerResponse;
  try {
    if (session === undefined) throw new Error("store is not open");
    switch (req.op) {
      case "query":
        reply = { id: req.id, ok: true, result: session.query(req.statement) };
        break;
      case "batch":
        reply = { id: req.id, ok: true, result: session.batchGroups(req.groups) };
        break;
      case "index":
        reply = { id: req.id, ok: true, result: session.indexLog(req.request) };
        break;
      case "close":
        session.close();
        session = undefined;
        reply = { id: req.id, ok: true };
        break;
    }
  } catch (err) {
    reply = { id: req.id, ok: false, error: serializeError(err) };
  }
  port.postMessage(reply);
  if (req.op === "close") port.close();
});
