import type { AdapterContext, ProtocolAdapter, RunningAdapter } from "../../core/adapter/index.js";
import { PostgresSqlAnalyzer } from "../../core/inspect/postgres-sql/index.js";
import { COLUMN_MASK } from "../../core/masking/index.js";
import { startPostgresListener } from "./server.js";
import { POSTGRES_REFUSALS } from "./refusals.js";

/** PostgreSQL clients (psql, drivers, pgbench) in, PostgreSQL targets out: docs/postgres.md. */
export const postgresAdapter: ProtocolAdapter<string> = {
  protocol: "postgres",
  listenKey: "postgres",
  refusals: POSTGRES_REFUSALS,
  async start(ctx: AdapterContext): Promise<RunningAdapter> {
    const analyzer = await PostgresSqlAnalyzer.load();
    const tls = ctx.config.postgres.tls;
    const running = await startPostgresListener({
      listen: ctx.listen,
      gate: ctx.gate,
      connector: ctx.connector,
      verifier: ctx.verifier,
      dataDir: ctx.config.data,
      tls: {
        enabled: tls.enabled,
        require: tls.require,
        ...(tls.cert ? { cert: tls.cert } : {}),
        ...(tls.key ? { key: tls.key } : {}),
      },
      analyzer,
      maskerFor: (connection) => {
        const masker = ctx.maskers.for(connection);
        return masker ? { masker, maskText: COLUMN_MASK } : undefined;
      },
      log: ctx.log,
    });
    return { address: running.address, close: () => running.close() };
  },
};
