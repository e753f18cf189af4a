/** The policy module's public surface: config loading, types, and decisions. */
export { ConfigError, formatPath } from "./errors.js";
export { loadConfig, parseConfig, configMeta, type ParseOptions, type ConfigMeta } from "./loader.js";
export * from "./schema.js";
export { parseDuration, formatDuration } from "./duration.js";
export { emptyFacts, factsFrom } from "./facts.js";
export type { RequestFacts, StatementFact, CommandFact, ApiCallFact, HttpCallFact } from "./facts.js";
export {
  CompiledPolicy,
  compilePolicy,
  compileConnection,
  decide,
  checkAccess,
  type CompiledConnection,
  type Decision,
  type RuleRef,
} from "./decide.js";
export { describeConfig, renderDescription, REDACTED, type ConfigDescription } from "./describe.js";
export { parseSubject, SubjectSet, type SubjectRef } from "./subjects.js";
export * from "./vocabulary.js";
