import type ssh2 from "ssh2";
import type { Log } from "../../core/adapter/index.js";
import type { Identity } from "../../core/identity/index.js";
import type { Gate } from "../../core/session/gate.js";
import { parseLoginUser, type SshAuthenticator } from "./auth.js";

/** Who logged in, once the login succeeded: the identity the session is opened for, and how it proved itself. */
export interface Login {
  /** The login name of the last attempt (`CONN` or `targetuser%CONN`). */
  username: string;
  accepted?: { identity: Identity; method: string };
}

/**
 * Answers a client's login attempts (ssh2's "authentication" events): a bearer token as the password, a registered
 * key or a certificate of the gateway's CA. A failed attempt is recorded without its credential; an attempt that
 * cannot be checked is refused and logged. Returns the login, filled in as attempts arrive; the session is opened
 * for it once the client is ready.
 */
export function acceptLogins(
  client: ssh2.Connection,
  deps: { gate: Gate; auth: SshAuthenticator; log: Log },
  clientAddress: string,
): Login {
  const login: Login = { username: "" };
  client.on("authentication", (ctx) => {
    login.username = ctx.username;
    const attempt = async () => {
      if (ctx.method === "password") return deps.auth.password(ctx.password);
      if (ctx.method === "publickey") return deps.auth.publicKey(ctx);
      return undefined;
    };
    attempt()
      .then(
        async (result) => {
          if (!result) return ctx.reject(["publickey", "password"]);
          if (result.ok === "check") return ctx.accept();
          if (result.ok === false) {
            await deps.gate.authFailed({
              protocol: "ssh",
              connection: parseLoginUser(ctx.username).connection,
              clientAddress,
              code: result.code,
              message: `${ctx.method}: ${result.message}`,
            });
            return ctx.reject(["publickey", "password"]);
          }
          login.accepted = { identity: result.identity, method: result.method };
          ctx.accept();
        },
        (err: unknown) => {
          deps.log("ssh: authentication error", { err: String(err) });
          ctx.reject();
        },
      )
      // answering the attempt itself failed: that ends this client, never the process
      .catch((err: unknown) => {
        deps.log("ssh: authentication error", { err: String(err) });
        client.end();
      });
  });
  return login;
}
