import ssh2 from "ssh2";
import { loadShellAnalyzer } from "../../core/inspect/shell/index.js";
import { loadSshCa } from "../../core/identity/index.js";
import { Masker } from "../../core/masking/index.js";
import type { SshConnectionConfig } from "../../core/policy/schema.js";
import type { ListenerContext, RunningListener } from "../../server/listeners.js";
import { SshAuthenticator } from "./auth.js";
import { handleClient } from "./connection.js";
import { loadOrCreateHostKey } from "./host-key.js";

/**
 * The SSH listener: OpenSSH clients in, OpenSSH targets out. Host key and user CA live in DATA/keys/ and are
 * created on first start.
 */
export async function startSshListener(ctx: ListenerContext): Promise<RunningListener> {
  const analyzer = await loadShellAnalyzer();
  const hostKey = loadOrCreateHostKey(ctx.config.data);
  const auth = new SshAuthenticator(ctx.verifier, ctx.config.identity.ssh_keys, loadSshCa(ctx.config.data).publicKey);
  const maskers = new Map<SshConnectionConfig, Masker>();
  const live = new Set<() => Promise<void>>();
  const server = new ssh2.Server({ hostKeys: [hostKey.private], ident: "Gatehouse" }, (client, info) => {
    handleClient(
      {
        gate: ctx.gate,
        auth,
        analyzer,
        maskerFor: (connection) => {
          let m = maskers.get(connection);
          if (!m) {
            m = Masker.from(connection.masking);
            maskers.set(connection, m);
          }
          return m.enabled ? m : undefined;
        },
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
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(ctx.listen.port, ctx.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  const address =
    typeof addr === "object" && addr ? `${addr.address}:${addr.port}` : `${ctx.listen.host}:${ctx.listen.port}`;
  return {
    protocol: "ssh",
    address,
    close: async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // end() closes the client and returns its session's close work (session.end, recording seal), including a
      // session whose openSession was still running. A client leaves `live` only once that work is done, so one
      // that disconnected before close() is still awaited here.
      await Promise.allSettled([...live].map((end) => end()));
      await stopped;
    },
  };
}
