import type ssh2 from "ssh2";
import type { Log, TargetConnector } from "../../core/adapter/index.js";
import type { ShellAnalyzer } from "../../core/inspect/shell/index.js";
import type { Masker } from "../../core/masking/index.js";
import type { SshConnectionConfig } from "../../core/policy/schema.js";
import type { Gate } from "../../core/session/gate.js";
import type { SshAuthenticator } from "./auth.js";
import { ClientSession } from "./client-session.js";
import { ForwardingRefusals } from "./forwarding.js";
import { acceptLogins } from "./login.js";
import { serveSessionChannel } from "./session-channel.js";

export interface SshClientDeps {
  gate: Gate;
  connector: TargetConnector;
  auth: SshAuthenticator;
  analyzer: ShellAnalyzer;
  maskerFor(connection: SshConnectionConfig): Masker | undefined;
  log: Log;
  /** Registers the connection so the listener can end it on shutdown. */
  track(end: () => Promise<void>): () => void;
}

/**
 * One client connection, put together from its parts: the login (login.ts), then the gated session and the target
 * login (client-session.ts), session channels (session-channel.ts) and the refusal of every kind of forwarding
 * (forwarding.ts). Every exec command, shell line and SFTP path operation goes through `session.admit` before its
 * bytes reach the target.
 */
export function handleClient(deps: SshClientDeps, client: ssh2.Connection, info: ssh2.ClientInfo): void {
  const clientAddress = `${info.ip}:${info.port}`;
  const session = new ClientSession(deps, client, clientAddress, info.header.versions.software);
  const forwarding = new ForwardingRefusals(session, deps.log);
  const untrack = deps.track(async () => {
    client.end();
    await session.finish("gateway shutdown");
  });

  const channels = { ...deps, session, forwarding };

  const login = acceptLogins(client, deps, clientAddress);
  client.on("ready", () => session.open(login));
  client.on("session", (accept) => serveSessionChannel(channels, accept()));
  forwarding.watch(client);

  client.on("error", (err) => deps.log("ssh: client connection error", { err: err.message, client: clientAddress }));
  client.on("close", () => {
    // stays tracked until its session has ended: the listener's close() must wait for that too
    session
      .finish("client disconnected")
      .finally(untrack)
      .catch((err: unknown) => deps.log("ssh: session did not end cleanly", { err: String(err) }));
  });
}
