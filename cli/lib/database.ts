/** How CLI commands reach the database: the same Neon HTTP driver the Worker uses. */
import { join } from 'node:path';
import { type NeonQueryFunction, neon, neonConfig } from '@neondatabase/serverless';
import { pgliteBackend, postgresBackend, type SqlBackend } from '../sql-endpoint/backends.ts';
import { type SqlEndpoint, startSqlEndpoint } from '../sql-endpoint/server.ts';
import { ROOT, readDevVars } from './dev-vars.ts';
import { CliError } from './output.ts';

export const PGLITE_DIR = join(ROOT, '.data', 'pglite');

export interface DatabaseTarget {
  url: string;
  endpoint?: string;
  token?: string;
}

/** The local backend `npm start` uses: PostgreSQL when DEV_POSTGRES_URL is set, else PGlite under .data/. */
export async function localBackend(): Promise<SqlBackend> {
  const postgres = process.env.DEV_POSTGRES_URL;
  return postgres ? postgresBackend(postgres) : pgliteBackend(PGLITE_DIR);
}

/** Settings from the environment first, then `.dev.vars`. */
export function databaseTarget(): DatabaseTarget {
  const devVars = readDevVars();
  const pick = (name: string) => process.env[name] || devVars[name] || undefined;
  const url = pick('DATABASE_URL');
  if (!url) throw new CliError('DATABASE_URL is not set (run `npm start` once to create .dev.vars, or export it).');
  return { url, endpoint: pick('DATABASE_HTTP_ENDPOINT'), token: pick('DATABASE_HTTP_TOKEN') };
}

export function sqlClient(target: DatabaseTarget): NeonQueryFunction<false, false> {
  // The driver's endpoint is a global setting; undefined restores Neon's own.
  neonConfig.fetchEndpoint = target.endpoint as string;
  return neon(target.url, target.token ? { authToken: target.token } : {});
}

async function reachable(endpoint: string): Promise<boolean> {
  try {
    await fetch(endpoint, { method: 'POST', signal: AbortSignal.timeout(2_000) });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `work` against the configured database. When the configured endpoint is the local one and
 * nothing listens there (no `npm start` running), opens the local database in-process instead.
 */
export async function withDatabase<T>(work: (sql: NeonQueryFunction<false, false>) => Promise<T>): Promise<T> {
  const target = databaseTarget();
  const local = target.endpoint && /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(target.endpoint);
  if (!local || !target.endpoint || (await reachable(target.endpoint))) return work(sqlClient(target));

  const backend = await localBackend();
  const token = target.token ?? crypto.randomUUID().repeat(2);
  let endpoint: SqlEndpoint | undefined;
  try {
    endpoint = await startSqlEndpoint({ backend, token });
    return await work(sqlClient({ ...target, endpoint: endpoint.url, token }));
  } finally {
    await endpoint?.close();
    await backend.close();
  }
}
