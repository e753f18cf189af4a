import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { dialTcp, type CredentialOracle } from "../../core/adapter/index.js";
import { md5Response } from "./password.js";
import { connectTarget, TargetError } from "./target.js";
import { AUTH_CLEARTEXT, AUTH_MD5, AUTH_OK, message, readyForQuery } from "./wire.js";

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A target that asks for one password method and records the password message it gets. */
async function target(ask: Buffer): Promise<{ port: number; got: Promise<string> }> {
  let answered: (text: string) => void = () => undefined;
  const got = new Promise<string>((resolve) => (answered = resolve));
  const server = createServer((socket: Socket) => {
    let step = 0;
    socket.on("data", (chunk: Buffer) => {
      if (step++ === 0) return void socket.write(ask); // the startup message
      answered(chunk.subarray(5, chunk.length - 1).toString());
      const ok = Buffer.alloc(4);
      ok.writeInt32BE(AUTH_OK);
      socket.write(Buffer.concat([message("R", ok), readyForQuery("I")]));
    });
    socket.on("error", () => undefined);
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as AddressInfo).port, got };
}

function authRequest(code: number, extra = Buffer.alloc(0)): Buffer {
  const body = Buffer.alloc(4);
  body.writeInt32BE(code);
  return message("R", Buffer.concat([body, extra]));
}

const oracle: CredentialOracle = {
  pgMd5: (user, salt) => Promise.resolve(md5Response(user, "held-by-the-agent", salt)),
  pgScram: () => Promise.reject(new Error("not asked")),
  sshIdentities: () => Promise.reject(new Error("not asked")),
  sshSign: () => Promise.reject(new Error("not asked")),
};

function login(port: number, withOracle: CredentialOracle | undefined, password?: string) {
  return connectTarget({
    target: { host: "127.0.0.1", port, user: "app", ...(password ? { password } : {}) },
    open: async () => ({
      socket: await dialTcp({ host: "127.0.0.1", port }),
      ...(withOracle ? { oracle: withOracle } : {}),
    }),
    purpose: "session",
    database: "app",
  });
}

describe("postgres login with secrets: agent", () => {
  it("answers md5 through the oracle, for the target's user", async () => {
    const salt = Buffer.from([9, 8, 7, 6]);
    const t = await target(authRequest(AUTH_MD5, salt));
    const conn = await login(t.port, oracle);
    expect(await t.got).toBe(md5Response("app", "held-by-the-agent", salt));
    conn.socket.destroy();
  });

  it("refuses a target that asks for a cleartext password, saying why", async () => {
    const t = await target(authRequest(AUTH_CLEARTEXT));
    const refused = login(t.port, oracle);
    await expect(refused).rejects.toThrow(TargetError);
    await expect(refused).rejects.toThrow(
      "the target asks for a cleartext password; with secrets: agent only md5 and SCRAM-SHA-256 can be used",
    );
    // a password the gateway holds still answers it
    const held = await target(authRequest(AUTH_CLEARTEXT));
    const conn = await login(held.port, undefined, "gateway-held");
    expect(await held.got).toBe("gateway-held");
    conn.socket.destroy();
  });
});
