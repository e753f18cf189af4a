/** PostgreSQL SQL analysis: text -> statement facts for src/core/policy, using PostgreSQL's own parser. */
export {
  PostgresSqlAnalyzer,
  type AnalyzedStatement,
  type AnalyzerOptions,
  type AnalyzerStats,
  type CopyFormat,
  type CopyInfo,
  type PreparedBody,
  type SqlAnalysis,
} from "./analyzer.js";
