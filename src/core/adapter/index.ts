export type { AdapterContext, ListenKey, Log, ProtocolAdapter, RefusalAnswers, RunningAdapter } from "./contract.js";
export {
  DirectConnector,
  dialTcp,
  TargetUnreachableError,
  type OpenOptions,
  type RouteEvidence,
  type StreamPurpose,
  type TargetConnector,
  type TargetEndpoint,
} from "./connector.js";
export { bindServer, LiveSockets, PendingWork, stopAccepting } from "./listener.js";
export { clientMustUseTls, loadTlsMaterial, secureContextFor, type TlsMaterial } from "./tls.js";
export { errorText } from "./errors.js";
