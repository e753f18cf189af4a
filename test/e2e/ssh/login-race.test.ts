/**
 * A client that goes away while its session is still being opened (token checked, `session.start` being written):
 * the session opened after that must still end (`session.end`, sealed recording), both when the client simply
 * disconnects and when the gateway stops, and Gateway.stop must wait for it before it closes the evidence.
 *
 * The race is driven deterministically: the real Gate's openSession is held after it opened the session until the
 * client's connection has closed (or the gateway began to stop); everything else is the real ssh client, the real
 * ssh2 server path and the real store.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import type ssh2 from "ssh2";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AuditRecord } from "../../../src/core/evidence/audit-event.js";
import { verifyEvidence } from "../../../src/core/evidence/verify.js";
import type { GatedSession, OpenSessionRequest } from "../../../src/core/session/gate.js";
import { openStore } from "../../../src/core/store/open.js";
import type * as SshConnection from "../../../src/protocols/ssh/connection.js";
import type { Gateway } from "../../../src/server/gateway.js";
import { startSshHarness, type SshHarness } from "./harness.js";

// the server side of each client connection, so a test can act once the gateway saw the client go
const accepted = vi.hoisted(() => [] as ssh2.Connection[]);
vi.mock("../../../src/protocols/ssh/connection.js", async (importOriginal) => {
  const real = await importOriginal<typeof SshConnection>();
  return {
    ...real,
    handleClient: (...args: Parameters<typeof real.handleClient>) => {
      real.handleClient(...args);
      accepted.push(args[1]); // after handleClient's own listeners: ours run after them
    },
  };
});

let h: SshHarness | undefined;
let stopped: Promise<void> | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  accepted.splice(0);
  // a failed test may not have stopped its gateway
  if (h) await stop(h).catch(() => undefined);
  if (h) rmSync(h.dir, { recursive: true, force: true });
  h = undefined;
  stopped = undefined;
});

function stop(harness: SshHarness): Promise<void> {
  stopped ??= harness.gateway.stop("test");
  return stopped;
}

/** Lets the real openSession run, then holds its result until release(). */
function holdOpenSession(gateway: Gateway): { opened: Promise<void>; release: () => void } {
  let opened!: () => void;
  let release!: () => void;
  const openedP = new Promise<void>((r) => (opened = r));
  const released = new Promise<void>((r) => (release = r));
  const gate = gateway.gate;
  const real = gate.openSession.bind(gate);
  gate.openSession = async (req: OpenSessionRequest): Promise<GatedSession> => {
    const session = await real(req);
    opened();
    await released;
    return session;
  };
  return { opened: openedP, release };
}

/**
 * Releases once the gateway closes its recorder (too late: the session can no longer end) or after a grace period
 * (a listener that waits for the session is still in its close()).
 */
function releaseAtRecorderClose(gateway: Gateway, release: () => void): void {
  const recorder = gateway.recorder;
  const close = recorder.close.bind(recorder);
  recorder.close = () => {
    release();
    return close();
  };
  setTimeout(release, 500);
}

function startClient(harness: SshHarness): ChildProcess {
  const { args, env } = harness.sshArgs("app-host");
  const child = spawn("ssh", [...args, "echo never-runs"], { env, stdio: "ignore" });
  children.push(child);
  return child;
}

interface HeldLogin {
  harness: SshHarness;
  hold: { release: () => void };
  child: ChildProcess;
  /** The gateway's side of the client's connection. */
  server: ssh2.Connection;
}

/** A gateway, and an ssh client whose session the gateway has opened but holds (openSession not returned yet). */
async function heldLogin(): Promise<HeldLogin> {
  const harness = await startSshHarness();
  h = harness;
  const hold = holdOpenSession(harness.gateway);
  const child = startClient(harness);
  await hold.opened;
  const server = accepted.at(-1);
  expect(server).toBeDefined();
  return { harness, hold, child, server: server as ssh2.Connection };
}

async function sessionEnds(harness: SshHarness, timeoutMs: number): Promise<AuditRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = await harness.gateway.store.readAudit({ fromSeq: 1, limit: 100_000 });
    const ends = records.filter((r) => r.type === "session.end");
    if (ends.length > 0 || Date.now() > deadline) return ends;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** After the gateway stopped: one session, started, ended with `reason`, sealed, before gateway.stop. */
async function expectEndedAndSealed(harness: SshHarness, reason: string): Promise<void> {
  const store = await openStore({ dataDir: harness.dir, readonly: true });
  try {
    const records = await store.readAudit({ fromSeq: 1, limit: 100_000 });
    const started = records.filter((r) => r.type === "session.start");
    expect(started).toHaveLength(1);
    const id = started[0]?.session_id as string;
    const ended = records.filter((r) => r.type === "session.end");
    expect(ended.map((r) => [r.session_id, r.data?.reason])).toEqual([[id, reason]]);
    expect((await store.getSession(id))?.seal, "recording sealed").toMatchObject({ reason });
    // no target was dialled for a session whose client had gone
    expect(records.filter((r) => r.type === "ssh.target")).toHaveLength(0);
    expect(records.at(-1)?.type).toBe("gateway.stop");
    expect(await verifyEvidence(store, { dataDir: harness.dir })).toMatchObject({
      ok: true,
      sessions: { verified: 1, sealed: 1, unsealed: 0 },
    });
  } finally {
    await store.close();
  }
}

describe("ssh client gone while its session is being opened", () => {
  it("ends and seals the session when the client disconnects during login", async () => {
    const { harness, hold, child, server } = await heldLogin();
    // the gateway has handled the close (no session yet) before openSession returns
    server.once("close", hold.release);
    child.kill("SIGKILL");

    const ends = await sessionEnds(harness, 5_000);
    expect(ends.map((r) => r.data?.reason)).toEqual(["client disconnected"]);
    await stop(harness);
    await expectEndedAndSealed(harness, "client disconnected");
  });

  it("ends and seals the session when the gateway stops during login", async () => {
    const { harness, hold } = await heldLogin();

    // stop() has already ended the client (no session yet) when it returns its promise
    const stopping = stop(harness);
    releaseAtRecorderClose(harness.gateway, hold.release);
    await stopping;
    await expectEndedAndSealed(harness, "gateway shutdown");
  });

  it("waits at gateway stop for the session of a client that disconnected during login", async () => {
    const { harness, hold, child, server } = await heldLogin();
    const stopped = new Promise<void>((resolve, reject) => {
      server.once("close", () => {
        // the connection is gone but its session is still opening: stop() must wait for it to end
        stop(harness).then(resolve, reject);
        releaseAtRecorderClose(harness.gateway, hold.release);
      });
    });
    child.kill("SIGKILL");
    await stopped;
    await expectEndedAndSealed(harness, "client disconnected");
  });
});
