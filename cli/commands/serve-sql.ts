import { randomBytes } from 'node:crypto';
import { localBackend } from '../lib/database.ts';
import { DEFAULT_SQL_ENDPOINT_PORT, readDevVars } from '../lib/dev-vars.ts';
import type { Output } from '../lib/output.ts';
import { startSqlEndpoint } from '../sql-endpoint/server.ts';
import { untilSignal } from './signals.ts';

export const serveSqlHelp = `mce serve-sql [--port N]
  Runs the local SQL-over-HTTP endpoint (PGlite under .data/, or DEV_POSTGRES_URL) until Ctrl-C.
  Uses DATABASE_HTTP_TOKEN from .dev.vars, or prints a fresh token.`;

export async function serveSqlCommand(out: Output, options: { port?: number }): Promise<void> {
  const token = readDevVars().DATABASE_HTTP_TOKEN ?? randomBytes(32).toString('base64url');
  const backend = await localBackend();
  const endpoint = await startSqlEndpoint({ backend, token, port: options.port ?? DEFAULT_SQL_ENDPOINT_PORT });
  out.result(`SQL endpoint on ${endpoint.url} (${backend.kind}); Ctrl-C stops it.`, {
    url: endpoint.url,
    backend: backend.kind,
  });
  await untilSignal();
  await endpoint.close();
  await backend.close();
}
