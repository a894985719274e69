/**
 * `npm start`: the whole system on one machine. Secrets in .dev.vars, the SQL endpoint on PGlite
 * (or DEV_POSTGRES_URL), migrations, static assets, then `wrangler dev`. Ctrl-C stops it all.
 */
import { spawn } from 'node:child_process';
import { localBackend, sqlClient } from '../lib/database.ts';
import { DEFAULT_SQL_ENDPOINT_PORT, ensureDevVars, ROOT } from '../lib/dev-vars.ts';
import { migrate } from '../lib/migrations.ts';
import { CliError, type Output } from '../lib/output.ts';
import { startSqlEndpoint } from '../sql-endpoint/server.ts';
import { buildAssetsCommand } from './build-assets.ts';
import { untilSignal } from './signals.ts';

export const startHelp = `mce start [--port N]
  Runs Mission Control Edge locally on http://127.0.0.1:8787 (PORT / --port to change).
  Environment: DEV_POSTGRES_URL (use this PostgreSQL instead of PGlite), SQL_ENDPOINT_PORT (default ${DEFAULT_SQL_ENDPOINT_PORT}).`;

async function waitForHealth(url: string, child: { exitCode: number | null }, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new CliError('wrangler dev exited during start-up (see its output above).');
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new CliError(`the Worker did not answer ${url} within ${timeoutMs / 1000} s`);
}

/** Secrets the Worker reads when present but does not require. */
const OPTIONAL_SECRETS = ['ENCRYPTION_KEY_PREVIOUS', 'UPSTASH_REDIS_REST_TOKEN'];

export async function startCommand(out: Output, options: { port?: number }): Promise<void> {
  const port = options.port ?? Number(process.env.PORT ?? 8787);
  const sqlPort = Number(process.env.SQL_ENDPOINT_PORT ?? DEFAULT_SQL_ENDPOINT_PORT);
  const { vars, added } = ensureDevVars(sqlPort);
  if (added.length > 0) out.info(`Wrote ${added.join(', ')} to .dev.vars`);

  const backend = await localBackend();
  const token = vars.DATABASE_HTTP_TOKEN ?? '';
  const endpointPort = Number(new URL(vars.DATABASE_HTTP_ENDPOINT ?? `http://127.0.0.1:${sqlPort}`).port);
  const endpoint = await startSqlEndpoint({ backend, token, port: endpointPort }).catch((err: Error) => {
    throw new CliError(
      `cannot start the SQL endpoint on port ${endpointPort} (${err.message}); is another \`npm start\` running?`,
    );
  });
  out.info(
    `SQL endpoint ${endpoint.url} on ${backend.kind === 'pglite' ? 'PGlite (.data/pglite)' : 'PostgreSQL (DEV_POSTGRES_URL)'}`,
  );

  const sql = sqlClient({ url: vars.DATABASE_URL ?? '', endpoint: endpoint.url, token });
  const applied = await migrate(sql);
  out.info(applied.length ? `Applied migrations: ${applied.join(', ')}` : 'Database schema is up to date');
  buildAssetsCommand({ ...out, result: () => {} });

  // wrangler dev reads only declared vars and required secrets from .dev.vars; these optional
  // secrets (a key being rotated out, the Upstash token) are handed over explicitly when set.
  const optional = OPTIONAL_SECRETS.flatMap((name) => (vars[name] ? ['--var', `${name}:${vars[name]}`] : []));
  const wrangler = spawn(
    'wrangler',
    [
      'dev',
      '--port',
      String(port),
      '--ip',
      '127.0.0.1',
      '--show-interactive-dev-session=false',
      '--log-level',
      'warn',
      // Local cron: GET /__scheduled?cron=0+*+*+*+* runs the hourly job on demand.
      '--test-scheduled',
      ...optional,
    ],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], detached: true },
  );
  const stopAll = async () => {
    if (wrangler.exitCode === null && wrangler.pid) {
      try {
        process.kill(-wrangler.pid, 'SIGTERM');
      } catch {}
      await new Promise((r) => wrangler.once('exit', r));
    }
    await endpoint.close();
    await backend.close();
  };

  try {
    await waitForHealth(`http://127.0.0.1:${port}/healthz`, wrangler, 60_000);
  } catch (err) {
    await stopAll();
    throw err;
  }
  out.info(
    [
      '',
      `Mission Control Edge is running on http://127.0.0.1:${port}`,
      `  API reference  http://127.0.0.1:${port}/docs`,
      '  Sign in with the local operator token: LOCAL_AUTH_TOKEN in .dev.vars',
      '  (sent as "Authorization: Bearer <token>"). Ctrl-C stops everything.',
    ].join('\n'),
  );

  const stopped = await Promise.race([
    untilSignal(),
    new Promise<'exited'>((r) => wrangler.once('exit', () => r('exited'))),
  ]);
  out.info(stopped === 'exited' ? 'wrangler dev exited; stopping.' : 'Stopping…');
  await stopAll();
  if (stopped === 'exited') throw new CliError('wrangler dev stopped unexpectedly.');
}
