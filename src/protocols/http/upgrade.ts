import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import WebSocket, { WebSocketServer, type RawData } from "ws";
import { errorText } from "../../core/adapter/index.js";
import { maskDocumentText } from "../../core/masking/json-mask.js";
import type { GatedSession } from "../../core/session/gate.js";
import type { ClientSessions } from "./client-sessions.js";
import {
  admissionRefusal,
  clientGone,
  prepareRequest,
  type ExchangeDeps,
  type Prepared,
  type RefusalWording,
} from "./exchange.js";
import { problemBody, type Refusal } from "./refusals.js";
import { forwardedHeaders } from "./target-client.js";
import { recordRelayed, WsFlow } from "./ws-flow.js";

/** The subprotocol the target chose, per upgrade request: the client is offered exactly that one. */
const chosenProtocol = new WeakMap<IncomingMessage, string>();

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
  handleProtocols: (_offered, req) => chosenProtocol.get(req) ?? false,
});

/** Handshake headers ws writes itself for the target's side. */
const HANDSHAKE = ["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"];

/** Relays an admitted WebSocket between the client and the target; resolves when both sides are closed. */
export type WebSocketRelay = (p: Prepared, client: WebSocket, target: WebSocket) => Promise<void>;

/**
 * An Upgrade request. Only WebSocket upgrades pass (SPDY and h2c are refused: the gateway must read what flows).
 * The upgrade is admitted like any request; the target's WebSocket is opened first, with the client's offered
 * subprotocols, and the client's handshake is answered with the one the target chose. Then the profile's relay
 * carries the messages (Kubernetes exec: a terminal session), or the generic one below.
 */
export async function handleUpgrade(
  deps: ExchangeDeps,
  client: ClientSessions,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): Promise<void> {
  const answer = (r: Refusal, profile?: RefusalWording) => writeRefusal(socket, r, profile);
  if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
    answer({
      status: 400,
      kind: "upgrade-refused",
      message: `only WebSocket upgrades pass the gateway, not ${JSON.stringify(req.headers.upgrade ?? "")}`,
    });
    return;
  }
  const p = await prepareRequest(deps, client, req, answer);
  if (!p) return;
  const gone = clientGone(socket, p.session);
  const admission = await p.session.admit({
    text: p.text,
    facts: p.facts,
    data: { ...p.data, upgrade: "websocket" },
    ...(gone.signal ? { signal: gone.signal } : {}),
  });
  if (!admission.forward) {
    answer(admissionRefusal(admission), p.profile);
    return;
  }
  gone.detach();
  if (gone.happened) return;

  let stream;
  try {
    stream = await p.target.openStream(p.session);
  } catch (err) {
    answer({ status: 502, kind: "target-unreachable", message: errorText(err) }, p.profile);
    return;
  }
  const spec = p.target.spec;
  const headers = forwardedHeaders(req.headers, spec, p.target.host);
  for (const h of HANDSHAKE) delete headers[h];
  const offered = String(req.headers["sec-websocket-protocol"] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const scheme = spec.url.protocol === "https:" ? "wss:" : "ws:";
  const target = new WebSocket(`${scheme}//${spec.url.host}${p.target.path(p.path)}`, offered, {
    headers: headers as Record<string, string>,
    createConnection: () => stream as Socket,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
  });
  const opened = await new Promise<true | Refusal>((resolve) => {
    target.once("open", () => resolve(true));
    target.once("unexpected-response", (_r, res) => {
      // the target refused the upgrade: the client gets its status (and the recording says so)
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.once("end", () =>
        resolve({
          status: res.statusCode ?? 502,
          kind: "target-refused",
          message: Buffer.concat(chunks).toString("utf8").slice(0, 2000),
        }),
      );
    });
    target.once("error", (err) => resolve({ status: 502, kind: "target-unreachable", message: err.message }));
  });
  if (opened !== true) {
    record(p.session, "response", { status: opened.status, upgrade: "refused by the target" });
    answer(opened, p.profile);
    target.terminate();
    return;
  }
  if (target.protocol) chosenProtocol.set(req, target.protocol);
  record(p.session, "response", {
    status: 101,
    upgrade: "websocket",
    ...(target.protocol ? { subprotocol: target.protocol } : {}),
  });
  const clientWs = await new Promise<WebSocket>((resolve) => wss.handleUpgrade(req, socket, head, resolve));
  const relay = p.profile.webSocketRelay?.(p) ?? relayMessages;
  await relay(p, clientWs, target);
}

/**
 * Any other WebSocket: messages pass both ways unchanged in order. The recording keeps text messages (what the
 * target sent, masked like a response body) and the size of binary ones.
 */
export const relayMessages: WebSocketRelay = (p, client, target) =>
  new Promise((resolve) => {
    const masking = p.masking;
    const maskText = (text: string): string => {
      let json;
      try {
        json = masking.json ? maskDocumentText(text, masking.json) : undefined;
      } catch {
        return "[a message too deeply nested to mask]";
      }
      if (json) return json.text;
      return masking.text?.maskText(text)?.text ?? text;
    };
    let lost = false;
    // evidence is gone: the relay ends rather than pass anything unrecorded
    const evidenceLost = (err: unknown) => {
      if (lost) return;
      lost = true;
      const reason = `gatehouse: evidence unavailable: ${errorText(err)}`.slice(0, 120);
      client.close(1011, reason);
      target.close(1011, "gatehouse: evidence unavailable");
    };
    const recording = p.session.recording;
    const pass = (from: WebSocket, to: WebSocket, direction: "input" | "output") => {
      const flow = new WsFlow(from);
      from.on("message", (data: RawData, isBinary: boolean) => {
        if (lost) return;
        const bytes = toBuffer(data);
        if (isBinary) {
          if (
            !recordRelayed(
              () => recording.record(direction, { binary_bytes: bytes.length }),
              recording,
              flow,
              evidenceLost,
            )
          )
            return;
          flow.send(to, direction === "output" ? p.target.held.scrub(bytes) : bytes, true);
          return;
        }
        const text = bytes.toString("utf8");
        const shown = direction === "output" ? p.target.held.scrub(Buffer.from(maskText(text))).toString("utf8") : text;
        const kept = direction === "output" ? shown : maskText(text);
        if (!recordRelayed(() => recording.record(direction, { data: kept }), recording, flow, evidenceLost)) return;
        flow.send(to, shown, false);
      });
    };
    pass(client, target, "input");
    pass(target, client, "output");
    let open = 2;
    const closed = (other: WebSocket) => (code: number, reason: Buffer) => {
      if (other.readyState === WebSocket.OPEN) other.close(validCloseCode(code), reason);
      if (--open === 0) resolve();
    };
    client.once("close", closed(target));
    target.once("close", closed(client));
    client.once("error", () => target.terminate());
    target.once("error", () => client.terminate());
  });

export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** 1005/1006 describe a missing close frame: they may not be sent in one. */
export function validCloseCode(code: number): number {
  return code === 1005 || code === 1006 || code < 1000 ? 1000 : code;
}

export function record(session: GatedSession, kind: string, data: Record<string, unknown>): void {
  try {
    session.recording.record(kind, data);
  } catch {
    // the recorder is full or failed: the session's next request is refused for it
  }
}

/** An HTTP response written on the raw socket of an upgrade request, then the socket closes. */
function writeRefusal(socket: Socket, r: Refusal, profile?: RefusalWording): void {
  const { contentType, body } = (profile?.refusalBody ?? problemBody)(r);
  const extra = r.status === 401 ? 'www-authenticate: Bearer realm="gatehouse"\r\n' : "";
  socket.end(
    `HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status] ?? "Refused"}\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  502: "Bad Gateway",
  503: "Service Unavailable",
};
