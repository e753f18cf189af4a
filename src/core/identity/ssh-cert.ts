import { createPublicKey, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { loadOrCreateEd25519Key, type Ed25519KeyPair } from "../keys.js";
import type { Identity, IdentityKind } from "./identity.js";

/**
 * OpenSSH user certificates (PROTOCOL.certkeys) signed by the gateway's own Ed25519 CA, so a bot can log in to the
 * SSH listener with a short-lived certificate instead of a token. ssh2 parses certificates but cannot sign them,
 * and ssh-keygen may be absent, so the encoding is written here on node:crypto. Only Ed25519 subject keys.
 */
export const SSH_CERT_ALGO = "ssh-ed25519-cert-v01@openssh.com";
export const SSH_CERT_ISSUER = "gatehouse-ssh-ca";
const USER_CERT = 1;
/** Extensions carrying the identity (custom names are allowed by the format when they contain '@'). */
const EXT_GROUPS = "groups@gatehouse";
const EXT_KIND = "kind@gatehouse";
const STANDARD_EXTENSIONS = ["permit-pty"];
export const MAX_SSH_CERT_TTL_MS = 24 * 60 * 60 * 1000;

export function sshCaKeyPath(dataDir: string): string {
  return join(dataDir, "keys", "ssh-user-ca.pem");
}

export function loadSshCa(dataDir: string): Ed25519KeyPair {
  return loadOrCreateEd25519Key(sshCaKeyPath(dataDir));
}

// ---------------------------------------------------------------- wire encoding (RFC 4251 types)

function str(data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data) : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos === this.buf.length;
  }
  u32(): number {
    if (this.pos + 4 > this.buf.length) throw new Error("truncated");
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    if (this.pos + 8 > this.buf.length) throw new Error("truncated");
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    if (this.pos + n > this.buf.length) throw new Error("truncated");
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  string(): string {
    return this.bytes().toString("utf8");
  }
  offset(): number {
    return this.pos;
  }
}

/** The raw 32-byte Ed25519 public key inside a KeyObject. */
function rawEd25519(key: KeyObject): Buffer {
  const jwk = key.export({ format: "jwk" });
  if (jwk.crv !== "Ed25519" || typeof jwk.x !== "string") throw new Error("not an Ed25519 key");
  return Buffer.from(jwk.x, "base64url");
}

function ed25519FromRaw(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
}

/** `ssh-ed25519` public key blob (what authorized_keys base64-encodes). */
export function ed25519Blob(raw: Buffer): Buffer {
  return Buffer.concat([str("ssh-ed25519"), str(raw)]);
}

/** Parses an `ssh-ed25519 AAAA... comment` line to the raw 32-byte key. */
export function parseEd25519PublicLine(line: string): Buffer {
  const [type, b64] = line.trim().split(/\s+/);
  if (type !== "ssh-ed25519" || !b64) throw new Error('expected an "ssh-ed25519 AAAA..." public key');
  const r = new Reader(Buffer.from(b64, "base64"));
  if (r.string() !== "ssh-ed25519") throw new Error("public key blob is not ssh-ed25519");
  const raw = r.bytes();
  if (raw.length !== 32 || !r.done) throw new Error("malformed ssh-ed25519 public key");
  return raw;
}

// ---------------------------------------------------------------- signing

export interface SshCertRequest {
  /** The subject's public key line (`ssh-ed25519 AAAA...`). */
  publicKey: string;
  subject: string;
  groups: string[];
  kind: IdentityKind;
  ttlMs: number;
  /** Clock for tests. */
  now?: Date;
}

export interface SignedSshCert {
  /** One line for `KEY-cert.pub`: `ssh-ed25519-cert-v01@openssh.com AAAA... subject`. */
  line: string;
  serial: bigint;
  validAfter: Date;
  validBefore: Date;
}

export function signSshUserCert(ca: Ed25519KeyPair, req: SshCertRequest): SignedSshCert {
  if (!(req.ttlMs >= 1000 && req.ttlMs <= MAX_SSH_CERT_TTL_MS))
    throw new RangeError("certificate lifetime must be between 1 second and 24 hours");
  if (!req.subject) throw new TypeError("subject must not be empty");
  const raw = parseEd25519PublicLine(req.publicKey);
  const now = req.now ?? new Date();
  // a minute of back-dating tolerates clocks that are slightly behind, as ssh-keygen users usually do
  const after = BigInt(Math.floor(now.getTime() / 1000) - 60);
  const before = BigInt(Math.floor((now.getTime() + req.ttlMs) / 1000));
  const serial = randomBytes(8).readBigUInt64BE();
  const extensions: [string, string][] = [
    [EXT_GROUPS, req.groups.join(",")],
    [EXT_KIND, req.kind],
    ...STANDARD_EXTENSIONS.map((e): [string, string] => [e, ""]),
  ];
  // the format wants extensions sorted by name
  extensions.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const extBlob = Buffer.concat(extensions.flatMap(([k, v]) => [str(k), str(v === "" ? Buffer.alloc(0) : str(v))]));
  const body = Buffer.concat([
    str(SSH_CERT_ALGO),
    str(randomBytes(32)),
    str(raw),
    u64(serial),
    u32(USER_CERT),
    str(req.subject),
    str(str(req.subject)),
    u64(after),
    u64(before),
    str(Buffer.alloc(0)),
    str(extBlob),
    str(Buffer.alloc(0)),
    str(ed25519Blob(rawEd25519(ca.publicKey))),
  ]);
  const signature = sign(null, body, ca.privateKey);
  const cert = Buffer.concat([body, str(Buffer.concat([str("ssh-ed25519"), str(signature)]))]);
  return {
    line: `${SSH_CERT_ALGO} ${cert.toString("base64")} ${req.subject}`,
    serial,
    validAfter: new Date(Number(after) * 1000),
    validBefore: new Date(Number(before) * 1000),
  };
}

// ---------------------------------------------------------------- verification

export interface VerifiedSshCert {
  identity: Identity;
  /** The certified key: client signatures must verify with it. */
  key: KeyObject;
}

/** Checks a certificate blob offered at login: signed by this CA, a user certificate, valid now. */
export function verifySshUserCert(caPublic: KeyObject, blob: Buffer, now = new Date()): VerifiedSshCert {
  const r = new Reader(blob);
  if (r.string() !== SSH_CERT_ALGO) throw new Error("not an ssh-ed25519 certificate");
  r.bytes(); // nonce
  const raw = r.bytes();
  const serial = r.u64();
  const type = r.u32();
  const keyId = r.string();
  r.bytes(); // principals: the login user picks the connection here, so they are informational
  const after = r.u64();
  const before = r.u64();
  const critical = r.bytes();
  const extBlob = r.bytes();
  r.bytes(); // reserved
  const signer = r.bytes();
  const signedLength = r.offset();
  const sigBlob = r.bytes();
  if (!r.done) throw new Error("trailing data after the certificate");
  if (type !== USER_CERT) throw new Error("not a user certificate");
  if (critical.length > 0) throw new Error("certificate has critical options this gateway does not enforce");
  if (!signer.equals(ed25519Blob(rawEd25519(caPublic))))
    throw new Error("certificate is not signed by this gateway's CA");
  const sr = new Reader(sigBlob);
  if (sr.string() !== "ssh-ed25519") throw new Error("unsupported certificate signature");
  if (!verify(null, blob.subarray(0, signedLength), caPublic, sr.bytes()))
    throw new Error("certificate signature does not verify");
  const secs = BigInt(Math.floor(now.getTime() / 1000));
  if (secs < after) throw new Error("certificate is not valid yet");
  if (secs >= before) throw new Error("certificate has expired");
  const ext = new Map<string, string>();
  const er = new Reader(extBlob);
  while (!er.done) {
    const name = er.string();
    const data = er.bytes();
    ext.set(name, data.length > 0 ? new Reader(data).string() : "");
  }
  const kind = ext.get(EXT_KIND) === "human" ? "human" : "bot";
  const groups = (ext.get(EXT_GROUPS) ?? "").split(",").filter(Boolean);
  return {
    key: ed25519FromRaw(raw),
    identity: {
      subject: keyId,
      kind,
      groups,
      issuer: SSH_CERT_ISSUER,
      tokenId: `ssh-cert:${serial.toString(16).padStart(16, "0")}`,
      expiresAt: new Date(Number(before) * 1000),
    },
  };
}
