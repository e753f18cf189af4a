/**
 * The gateway's side of the credential oracle (`secrets: agent`): the core's `CredentialOracle` over one agent
 * instance's `/v1/credential`. Each call is one request naming the connection; the answer is checked for the shape
 * the step needs, and a refusal becomes a CredentialRefusedError with the agent's reason.
 */
import {
  CredentialRefusedError,
  errorText,
  type CredentialOracle,
  type ScramSignatures,
} from "../core/adapter/index.js";
import type { CredentialAnswer, CredentialRequest } from "./wire.js";

/** Sends one credential request over the tunnel; rejects only when the tunnel cannot carry it. */
export type CredentialTransport = (request: CredentialRequest) => Promise<CredentialAnswer>;

type Granted = Extract<CredentialAnswer, { ok: true }>;

export function tunnelOracle(agent: string, connection: string, send: CredentialTransport): CredentialOracle {
  /** The answer's `field`, or why there is none. */
  const ask = async <F extends Exclude<keyof Granted, "ok">>(
    request: CredentialRequest,
    field: F,
  ): Promise<NonNullable<Granted[F]>> => {
    let answer: CredentialAnswer;
    try {
      answer = await send(request);
    } catch (err) {
      throw new CredentialRefusedError(
        `agent ${agent} could not answer for the credentials of "${connection}": ${errorText(err)}`,
        { cause: err },
      );
    }
    if (!answer.ok) throw new CredentialRefusedError(`agent ${agent}: ${answer.error}`);
    const value = answer[field];
    if (value === undefined || value === null)
      throw new CredentialRefusedError(`agent ${agent} answered ${request.op} without ${field}`);
    return value;
  };
  return {
    pgMd5: (user, salt) => ask({ op: "pg.md5", connection, user, salt: salt.toString("base64") }, "response"),
    async pgScram(salt, iterations, authMessage): Promise<ScramSignatures> {
      const request: CredentialRequest = {
        op: "pg.scram-sha-256",
        connection,
        salt: salt.toString("base64"),
        iterations,
        auth_message: authMessage,
      };
      const { proof, server_signature } = await ask(request, "scram");
      return { proof: Buffer.from(proof, "base64"), serverSignature: Buffer.from(server_signature, "base64") };
    },
    async sshIdentities() {
      const keys = await ask({ op: "ssh.identities", connection }, "keys");
      return keys.map((k) => Buffer.from(k, "base64"));
    },
    async sshSign(publicKey, data, hash) {
      const request: CredentialRequest = {
        op: "ssh.sign",
        connection,
        public_key: publicKey.toString("base64"),
        data: data.toString("base64"),
        ...(hash ? { hash } : {}),
      };
      return Buffer.from(await ask(request, "signature"), "base64");
    },
  };
}
