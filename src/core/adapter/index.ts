export type { AdapterContext, ListenKey, Log, ProtocolAdapter, RefusalAnswers, RunningAdapter } from "./contract.js";
export {
  CredentialRefusedError,
  DirectConnector,
  dialTcp,
  openTarget,
  TargetUnreachableError,
  type CredentialOracle,
  type OpenOptions,
  type ScramSignatures,
  type SshSignHash,
  type RouteEvidence,
  type StreamPurpose,
  type TargetConnector,
  type TargetEndpoint,
  type TargetStream,
} from "./connector.js";
export { bindServer, LiveSockets, PendingWork, stopAccepting } from "./listener.js";
export { clientMustUseTls, loadTlsMaterial, secureContextFor, type TlsMaterial } from "./tls.js";
export { errorText } from "./errors.js";
export { connectionNamed, endToEndHeaders, HOP_BY_HOP } from "./hop-by-hop.js";
