/** The database a benchmark runs on: the local SQL endpoint over PGlite, or PostgreSQL with BENCH_DATABASE_URL. */
import { randomBytes } from 'node:crypto';
import { type NeonQueryFunction, neon, neonConfig } from '@neondatabase/serverless';
import { migrate } from '../../cli/lib/migrations.ts';
import { pgliteBackend, postgresBackend } from '../../cli/sql-endpoint/backends.ts';
import { startSqlEndpoint } from '../../cli/sql-endpoint/server.ts';

export interface BenchDatabase {
  sql: NeonQueryFunction<false, false>;
  /** What the Worker needs to reach it. */
  bindings: { DATABASE_HTTP_ENDPOINT: string; DATABASE_HTTP_TOKEN: string };
  /** `PostgreSQL (BENCH_DATABASE_URL)` or `PGlite (in memory)`, for the report. */
  label: string;
  /** Driver round trips the endpoint has answered so far (the benchmark's own included). */
  roundTrips(): number;
  close(): Promise<void>;
}

/** Starts the endpoint in this process and applies the migrations. */
export async function startBenchDatabase(): Promise<BenchDatabase> {
  const token = randomBytes(32).toString('base64url');
  const postgresUrl = process.env.BENCH_DATABASE_URL;
  const backend = postgresUrl ? postgresBackend(postgresUrl) : await pgliteBackend();
  const endpoint = await startSqlEndpoint({ backend, token });
  neonConfig.fetchEndpoint = endpoint.url;
  const sql = neon('postgresql://bench@localhost/bench', { authToken: token });
  await migrate(sql);
  return {
    sql,
    bindings: { DATABASE_HTTP_ENDPOINT: endpoint.url, DATABASE_HTTP_TOKEN: token },
    label: postgresUrl ? 'PostgreSQL (BENCH_DATABASE_URL)' : 'PGlite (in memory)',
    roundTrips: () => endpoint.requests(),
    close: async () => {
      await endpoint.close();
      await backend.close();
    },
  };
}
