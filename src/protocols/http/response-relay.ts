import type { IncomingMessage, ServerResponse } from "node:http";
import { errorText } from "../../core/adapter/index.js";
import { JsonLinesMasker } from "../../core/masking/json-lines.js";
import { maskDocumentText } from "../../core/masking/json-mask.js";
import { OutputMasker } from "../../core/terminal/index.js";
import { BodyEvidence } from "./body-evidence.js";
import type { HeldSecrets } from "../../core/masking/index.js";
import { isJsonContentType, isJsonStream, masksAnything, type BodyMasking } from "./response-masking.js";
import { returnedHeaders } from "./target-client.js";

/** A JSON body is masked whole: larger ones are refused rather than passed unmasked. */
export const MAX_MASKED_JSON_BYTES = 32 * 1024 * 1024;
/** One document of a JSON stream (a watch event) is masked whole, up to this size. */
export const MAX_JSON_LINE_BYTES = 16 * 1024 * 1024;

export interface RelayOptions {
  /** The request's method (a response object does not carry it). */
  method: string;
  masking: BodyMasking;
  /** The client asked for a stream (a Kubernetes watch): JSON arrives as one document per line. */
  stream: boolean;
  recordBodyBytes: number;
  /** The target's held credentials: scrubbed from the body whatever else masks it. */
  held: HeldSecrets;
  /** Answers the client with a refusal instead of the target's response (nothing of it was sent yet). */
  refuse(status: number, message: string): void;
}

export interface RelayResult {
  status: number;
  /** Masked values replaced in the body. */
  masked: number;
  body: Record<string, unknown>;
  /** The response did not complete (client or target went away, or it was refused mid-way). */
  incomplete?: string;
}

/**
 * The target's response, to the client, masked: a JSON document parsed and masked whole, a JSON stream document
 * by document, anything else through the content detectors line by line. A body that masking needs but cannot
 * read (compressed, too large, not JSON where JSON is required) is refused: nothing unmasked leaves.
 */
export function relayResponse(
  upstream: IncomingMessage,
  res: ServerResponse,
  opts: RelayOptions,
): Promise<RelayResult> {
  const status = upstream.statusCode ?? 502;
  const evidence = new BodyEvidence(opts.recordBodyBytes);
  const contentType = upstream.headers["content-type"];
  const encoding = (upstream.headers["content-encoding"] ?? "identity").toLowerCase();
  const headers = opts.held.scrubHeaders(returnedHeaders(upstream.headers));
  let masked = 0;

  return new Promise((resolve) => {
    let settled = false;
    const done = (incomplete?: string) => {
      if (settled) return;
      settled = true;
      resolve({ status, masked, body: evidence.summary(), ...(incomplete ? { incomplete } : {}) });
    };
    const refuse = (message: string) => {
      upstream.destroy();
      if (!res.headersSent) opts.refuse(502, message);
      else res.destroy();
      done(message);
    };
    res.once("close", () => {
      if (!res.writableFinished) {
        upstream.destroy();
        done("the client went away");
      }
    });
    upstream.once("aborted", () => done("the target ended the response early"));
    upstream.once("error", (err) => {
      if (!res.headersSent) opts.refuse(502, `the target's response failed: ${err.message}`);
      else res.destroy();
      done(`the target's response failed: ${err.message}`);
    });

    const deliver = (chunk: Buffer) => {
      evidence.add(chunk);
      if (!res.write(chunk)) {
        upstream.pause();
        res.once("drain", () => upstream.resume());
      }
    };
    const scrubber = opts.held.empty ? undefined : opts.held.stream(deliver);
    const send = scrubber ? (chunk: Buffer) => scrubber.write(chunk) : deliver;
    const finish = () => {
      scrubber?.end();
      res.end();
      done();
    };
    // scrubbing can change a body's length
    const headersFor = (h: typeof headers) => (scrubber ? withoutLength(h) : h);

    const masking = opts.masking;
    if (!masksAnything(masking)) {
      res.writeHead(status, headersFor(headers));
      upstream.on("data", send);
      upstream.once("end", finish);
      return;
    }
    if (encoding !== "identity") {
      refuse(`the target's response is ${encoding}-encoded, which the gateway cannot mask`);
      return;
    }
    const json = isJsonContentType(contentType);
    const maskJson = masking.json;
    if (json && maskJson && (opts.stream || isJsonStream(contentType))) {
      res.writeHead(status, withoutLength(headers));
      const lines = new JsonLinesMasker(
        (doc) => {
          const m = maskJson(doc);
          masked += m.hits.length;
          return m;
        },
        send,
        MAX_JSON_LINE_BYTES,
      );
      upstream.on("data", (chunk: Buffer) => {
        try {
          lines.write(chunk);
        } catch (err) {
          refuse(`a streamed JSON document cannot be masked: ${errorText(err)}`);
        }
      });
      upstream.once("end", () => {
        try {
          lines.end();
          finish();
        } catch (err) {
          refuse(`a streamed JSON document cannot be masked: ${errorText(err)}`);
        }
      });
      return;
    }
    if (json && maskJson) {
      const parts: Buffer[] = [];
      let size = 0;
      upstream.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_MASKED_JSON_BYTES)
          return refuse(`the target's JSON response is larger than the gateway masks (${MAX_MASKED_JSON_BYTES} bytes)`);
        parts.push(chunk);
      });
      upstream.once("end", () => {
        if (settled) return;
        const raw = Buffer.concat(parts);
        let out: Buffer = raw;
        if (raw.length > 0) {
          const text = raw.toString("utf8");
          let doc;
          try {
            doc = maskDocumentText(text, maskJson);
          } catch (err) {
            return refuse(`the target's JSON response cannot be masked: ${errorText(err)}`);
          }
          if (doc) {
            masked += doc.hits.length;
            // re-serialized only when masking changed it (or duplicate keys made it unsafe to pass as sent)
            if (doc.text !== text) out = Buffer.from(doc.text);
          } else if (masking.jsonRequired) {
            return refuse("the target's response claims to be JSON but does not parse, so it cannot be masked");
          } else {
            out = masking.text?.maskBytes(raw)?.bytes ?? raw;
          }
        }
        out = opts.held.scrub(out);
        res.writeHead(status, { ...withoutLength(headers), "content-length": String(out.length) });
        deliver(out);
        res.end();
        done();
      });
      return;
    }
    if (masking.jsonRequired && carriesBody(status, opts.method, upstream)) {
      refuse(
        `the target answered ${contentType ?? "without a content type"}, which the gateway cannot mask (it masks JSON)`,
      );
      return;
    }
    if (!masking.text) {
      res.writeHead(status, headersFor(headers));
      upstream.on("data", send);
      upstream.once("end", finish);
      return;
    }
    // text, event streams, logs, anything else: the detectors line by line, partial lines held briefly
    res.writeHead(status, withoutLength(headers));
    const out = new OutputMasker(masking.text, send);
    upstream.on("data", (chunk: Buffer) => out.write(chunk));
    upstream.once("end", () => {
      out.flush();
      masked += out.hits;
      finish();
    });
  });
}

/** Whether a response has a body at all (the answer to a HEAD, a 204 or a 304 carries none, nor does length 0). */
function carriesBody(status: number, method: string, upstream: IncomingMessage): boolean {
  if (status === 204 || status === 304 || method === "HEAD") return false;
  return upstream.headers["content-length"] !== "0";
}

function withoutLength(h: ReturnType<typeof returnedHeaders>): ReturnType<typeof returnedHeaders> {
  const { "content-length": _drop, ...rest } = h;
  return rest;
}
