export type { AdapterContext, ListenKey, Log, ProtocolAdapter, RefusalAnswers, RunningAdapter } from "./contract.js";
export {
  DirectConnector,
  dialTcp,
  TargetUnreachableError,
  type StreamPurpose,
  type TargetConnector,
  type TargetEndpoint,
} from "./connector.js";
export { bindServer, LiveSockets, PendingWork, stopAccepting } from "./listener.js";
export { loadTlsMaterial, secureContextFor, type TlsMaterial } from "./tls.js";
