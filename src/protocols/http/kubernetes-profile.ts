import type { ShellAnalyzer } from "../../core/inspect/shell/index.js";
import { execCommand, execShellLine, kubernetesRequestFacts } from "../../core/inspect/kubernetes/index.js";
import type { Masker } from "../../core/masking/index.js";
import { emptyFacts, type RequestFacts } from "../../core/policy/facts.js";
import type { KubernetesConnectionConfig } from "../../core/policy/schema.js";
import { jsonMasking } from "./http-profile.js";
import { kubernetesTerminalRelay } from "./kubernetes-exec.js";
import { jsonOnlyAccept } from "./kubernetes-media-type.js";
import { maskKubernetesSecrets } from "./kubernetes-secret-mask.js";
import type { ConnectionProfile } from "./profile.js";
import { kubernetesStatusBody } from "./refusals.js";
import type { BodyMasking } from "./response-masking.js";

/**
 * Kubernetes connections: each request read into the API server's own terms (verb, group, version, resource,
 * subresource, namespace, name), an exec's command read with the shell analysis, Secrets masked in every JSON
 * response, refusals as `Status` objects, exec and attach as terminal sessions.
 */
export function kubernetesProfile(
  connection: KubernetesConnectionConfig,
  masker: Masker | undefined,
  analyzer: ShellAnalyzer,
): ConnectionProfile {
  const configured = jsonMasking(connection.masking?.json_paths, masker);
  const secretsMask =
    (secretsRequest: boolean): BodyMasking["json"] =>
    (doc) => {
      const secrets = maskKubernetesSecrets(doc, { secretsRequest });
      const more = configured.json?.(secrets.value);
      return { value: more ? more.value : secrets.value, hits: [...secrets.hits, ...(more?.hits ?? [])] };
    };
  const masking: BodyMasking = { json: secretsMask(false), text: masker };
  // a request for Secrets: an object without `kind` in a Secret's place is one; and a Secret in a form the gateway
  // cannot read (protobuf, YAML) could not be masked, so such a response is refused
  const secretsMasking: BodyMasking = { json: secretsMask(true), text: masker, jsonRequired: true };

  return {
    read(method, path, rawQuery) {
      const query = new URLSearchParams(rawQuery);
      const parsed = kubernetesRequestFacts(method, path, query);
      if ("unparseable" in parsed) return parsed;
      const call = parsed.call;
      const facts: RequestFacts = { ...emptyFacts(), apiCalls: [call] };
      const data: Record<string, unknown> = { method, ...call };
      if (rawQuery) data.query = rawQuery;
      if (call.verb === "exec") {
        const argv = execCommand(query) ?? [];
        data.command = argv;
        const line = execShellLine(argv);
        if ("unparseable" in line) facts.unparseable = { reason: line.unparseable };
        else {
          const analysis = analyzer.analyze(line.line);
          facts.commands = analysis.facts.commands;
          facts.pipelines = analysis.facts.pipelines;
          if (analysis.facts.unparseable) facts.unparseable = analysis.facts.unparseable;
        }
      }
      return {
        facts,
        data,
        stream: call.verb === "watch",
        masking: call.group === "" && call.resource === "secrets" ? secretsMasking : masking,
      };
    },
    refusedHeader(headers) {
      const impersonating = Object.keys(headers).find((h) => h.startsWith("impersonate-"));
      return impersonating
        ? `the ${impersonating} header is refused: requests act as the connection's credential, never as someone else`
        : undefined;
    },
    adjustHeaders(headers) {
      // ask for JSON (Table included), which the gateway can mask; protobuf it could not
      headers.accept = jsonOnlyAccept(typeof headers.accept === "string" ? headers.accept : undefined);
    },
    masking,
    webSocketRelay: (p) => kubernetesTerminalRelay(p, analyzer),
    refusalBody: kubernetesStatusBody,
  };
}
