import ssh2 from "ssh2";
import {
  bindServer,
  stopAccepting,
  type AdapterContext,
  type ProtocolAdapter,
  type RunningAdapter,
} from "../../core/adapter/index.js";
import { loadSshCa } from "../../core/identity/index.js";
import { loadShellAnalyzer } from "../../core/inspect/shell/index.js";
import { SshAuthenticator } from "./auth.js";
import { handleClient } from "./connection.js";
import { loadOrCreateHostKey } from "./host-key.js";
import { SSH_REFUSALS } from "./refusals.js";

/**
 * OpenSSH clients in, OpenSSH targets out: docs/ssh.md. Host key and user CA live in DATA/keys/ and are created on
 * first start.
 */
export const sshAdapter: ProtocolAdapter<number> = {
  protocol: "ssh",
  listenKey: "ssh",
  refusals: SSH_REFUSALS,
  async start(ctx: AdapterContext): Promise<RunningAdapter> {
    const analyzer = await loadShellAnalyzer();
    const hostKey = loadOrCreateHostKey(ctx.config.data);
    const auth = new SshAuthenticator(ctx.verifier, ctx.config.identity.ssh_keys, loadSshCa(ctx.config.data).publicKey);
    // per client: ends it and resolves once its session's evidence is written
    const live = new Set<() => Promise<void>>();
    const server = new ssh2.Server({ hostKeys: [hostKey.private], ident: "Gatehouse" }, (client, info) => {
      handleClient(
        {
          gate: ctx.gate,
          auth,
          analyzer,
          connector: ctx.connector,
          maskerFor: (connection) => ctx.maskers.for(connection),
          log: ctx.log,
          track: (end) => {
            live.add(end);
            return () => live.delete(end);
          },
        },
        client,
        info,
      );
    });
    const address = await bindServer(server, ctx.listen);
    return {
      address,
      close: async () => {
        const stopped = stopAccepting(server);
        // end() closes the client and returns its session's close work (session.end, recording seal), including a
        // session whose openSession was still running. A client leaves `live` only once that work is done, so one
        // that disconnected before close() is still awaited here.
        await Promise.allSettled([...live].map((end) => end()));
        await stopped;
      },
    };
  },
};
