import type { OutgoingHttpHeaders } from "node:http";
import type { RequestFacts } from "../../core/policy/facts.js";
import type { Prepared } from "./exchange.js";
import type { Refusal } from "./refusals.js";
import type { WebSocketRelay } from "./upgrade.js";
import type { BodyMasking } from "./response-masking.js";

/** What a request is, for the gate: its facts, and the details its audit record keeps. */
export interface RequestReading {
  facts: RequestFacts;
  data: Record<string, unknown>;
  /** The response is a stream of JSON documents (a Kubernetes watch). */
  stream?: boolean;
  /** This request's masking, when it differs from the connection's (Kubernetes: Secrets must be JSON). */
  masking?: BodyMasking;
}

/**
 * What differs between the connection types the HTTP listener serves (plain HTTP, the Kubernetes API): how a
 * request is read into facts, how responses are masked, and how a refusal looks to the client.
 */
export interface ConnectionProfile {
  /** `path` is normalized (request-path.ts); `query` is the raw query string as sent, without its `?`. */
  read(method: string, path: string, query: string): RequestReading | { unparseable: string };
  /** Headers the client sent that the gateway refuses to pass (with the reason), or undefined. */
  refusedHeader?(headers: Record<string, string | string[] | undefined>): string | undefined;
  /** Adjusts the headers the target gets (e.g. ask for a form the gateway can mask). */
  adjustHeaders?(headers: OutgoingHttpHeaders, masking: BodyMasking): void;
  masking: BodyMasking;
  /** A WebSocket this profile carries itself (Kubernetes exec and attach: terminal sessions); else messages pass. */
  webSocketRelay?(p: Prepared): WebSocketRelay | undefined;
  refusalBody(r: Refusal): { contentType: string; body: string };
}
