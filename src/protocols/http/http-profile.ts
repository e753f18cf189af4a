import { compileJsonPaths, maskJson } from "../../core/masking/json-mask.js";
import type { Masker } from "../../core/masking/index.js";
import { emptyFacts, type RequestFacts } from "../../core/policy/facts.js";
import type { HttpConnectionConfig } from "../../core/policy/schema.js";
import type { ConnectionProfile } from "./profile.js";
import { problemBody } from "./refusals.js";
import type { BodyMasking } from "./response-masking.js";

/** Plain HTTP connections: method + path facts, JSON path and detector masking, RFC 9457 refusals. */
export function httpProfile(connection: HttpConnectionConfig, masker: Masker | undefined): ConnectionProfile {
  return {
    read(method, path, query) {
      const facts: RequestFacts = { ...emptyFacts(), httpCalls: [{ method, path }] };
      return { facts, data: { method, path, ...(query ? { query } : {}) } };
    },
    masking: jsonMasking(connection.masking?.json_paths, masker),
    refusalBody: problemBody,
  };
}

/** JSON paths and detectors, as one BodyMasking (shared by the Kubernetes profile, which adds Secrets). */
export function jsonMasking(paths: readonly string[] | undefined, masker: Masker | undefined): BodyMasking {
  const compiled = paths && paths.length > 0 ? compileJsonPaths([...paths]) : undefined;
  if (!compiled && !masker) return {};
  return { json: (doc) => maskJson(doc, { paths: compiled, masker }), text: masker };
}
