/**
 * Checkpoints of a writer's audit chain as signed notes, shaped like a transparency log checkpoint (C2SP
 * signed-note and tlog-checkpoint), so that a copy sent to a sink can be checked with the public key alone:
 *
 *   gatehouse/audit/<writer>          origin: which chain
 *   <seq>                             how many records the chain holds (the seq of the last one)
 *   <base64 of the 32-byte hash>      the hash of the record at seq
 *   time <ISO 8601>                   when the checkpoint was signed (an extension line)
 *                                     a blank line ends the signed body
 *   — gatehouse/<key_id> <base64(key hash (4 bytes) || Ed25519 signature (64 bytes))>
 *
 * The signature is Ed25519 over the body's UTF-8 bytes (every line before the blank one, each with its newline).
 * The key hash is the first 4 bytes of SHA-256(key name || "\n" || 0x01 || raw 32-byte public key), as in
 * signed-note.
 */
import { createHash, sign, verify, type KeyObject } from "node:crypto";
import type { EvidenceSigner } from "../signing.js";

export interface CheckpointBody {
  writer: string;
  seq: number;
  /** Hex SHA-256 of the record at seq. */
  hash: string;
  time: string;
}

export interface SignedCheckpoint extends CheckpointBody {
  key_id: string;
  /** Base64 Ed25519 signature over the body text. */
  signature: string;
  /** The whole note as written. */
  note: string;
}

const SIGNATURE_DASH = "\u2014";

export function checkpointOrigin(writer: string): string {
  return `gatehouse/audit/${writer}`;
}

export function keyName(keyId: string): string {
  return `gatehouse/${keyId}`;
}

export function checkpointBodyText(b: CheckpointBody): string {
  return `${checkpointOrigin(b.writer)}\n${b.seq}\n${Buffer.from(b.hash, "hex").toString("base64")}\ntime ${b.time}\n`;
}

function rawPublicKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new Error("Ed25519 public key without x");
  return Buffer.from(jwk.x, "base64url");
}

export function noteKeyHash(name: string, publicKey: KeyObject): Buffer {
  return createHash("sha256")
    .update(Buffer.concat([Buffer.from(`${name}\n`, "utf8"), Buffer.from([1]), rawPublicKey(publicKey)]))
    .digest()
    .subarray(0, 4);
}

export function signCheckpoint(signer: EvidenceSigner, body: CheckpointBody): SignedCheckpoint {
  const text = checkpointBodyText(body);
  const signature = sign(null, Buffer.from(text, "utf8"), signer.privateKey);
  const name = keyName(signer.keyId);
  const blob = Buffer.concat([noteKeyHash(name, signer.publicKey), signature]).toString("base64");
  return {
    ...body,
    key_id: signer.keyId,
    signature: signature.toString("base64"),
    note: `${text}\n${SIGNATURE_DASH} ${name} ${blob}\n`,
  };
}

export class NoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoteError";
  }
}

/**
 * Reads a checkpoint note back (without checking its signature): the body fields, the signing key id and the
 * signature. Throws NoteError when the note is not in the shape above.
 */
export function parseCheckpointNote(note: string): SignedCheckpoint {
  const split = note.indexOf("\n\n");
  if (split < 0) throw new NoteError("no blank line after the body");
  const body = note.slice(0, split + 1);
  const lines = body.slice(0, -1).split("\n");
  const [origin, size, root, time] = lines;
  const prefix = "gatehouse/audit/";
  if (lines.length !== 4 || !origin?.startsWith(prefix)) throw new NoteError("not a gatehouse checkpoint");
  if (!/^[1-9][0-9]*$/.test(size ?? "")) throw new NoteError("bad size line");
  const hash = Buffer.from(root ?? "", "base64");
  if (hash.length !== 32 || hash.toString("base64") !== root) throw new NoteError("bad hash line");
  if (!time?.startsWith("time ")) throw new NoteError("no time line");
  const sigLine = note.slice(split + 2).split("\n")[0] ?? "";
  const m = /^\u2014 gatehouse\/([0-9a-f]{16}) ([A-Za-z0-9+/=]+)$/.exec(sigLine);
  if (!m) throw new NoteError("no gatehouse signature line");
  const blob = Buffer.from(m[2]!, "base64");
  if (blob.length !== 68) throw new NoteError("bad signature length");
  const parsed: CheckpointBody = {
    writer: origin.slice(prefix.length),
    seq: Number(size),
    hash: hash.toString("hex"),
    time: time.slice(5),
  };
  if (checkpointBodyText(parsed) !== body) throw new NoteError("body is not in canonical form");
  return { ...parsed, key_id: m[1]!, signature: blob.subarray(4).toString("base64"), note };
}

/** True when the note's signature (and its key hash) verify with `publicKey`. */
export function verifyCheckpointNote(note: string, publicKey: KeyObject): boolean {
  try {
    const cp = parseCheckpointNote(note);
    const blob = Buffer.from(note.slice(note.indexOf("\n\n") + 2).split(" ")[2] ?? "", "base64");
    if (!blob.subarray(0, 4).equals(noteKeyHash(keyName(cp.key_id), publicKey))) return false;
    return verify(null, Buffer.from(checkpointBodyText(cp), "utf8"), publicKey, Buffer.from(cp.signature, "base64"));
  } catch {
    return false;
  }
}
