/** Kubernetes API requests -> policy facts (verbs, resources, namespaces) and the commands an exec runs. */
export { kubernetesRequestFacts, type KubernetesRequest } from "./request-info.js";
export { execCommand, execShellLine, quoteShellWord } from "./exec-command.js";
