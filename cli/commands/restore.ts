/** `mce restore <backup-id|folder> --database-url URL`: a backup into an empty database (cli/lib/restore.ts). */
import { apiTargetHelp } from '../lib/api-client.ts';
import { CliError, type Output } from '../lib/output.ts';
import { restoreBackup } from '../lib/restore.ts';

const USAGE = 'mce restore <backup-id|folder> --database-url URL [--url WORKER_URL]';

export const restoreHelp = `${USAGE}
  Restores a backup into an empty database: a folder from \`mce backup --download\`, or a backup id
  downloaded through the Worker. Every object's size, SHA-256 and row count are checked before the
  database is touched; a database without migrations is migrated to the backup's schema first;
  a database holding data is refused. All rows load in one transaction, then pending migrations run.
  --database-url  postgres://user:pass@host/db, or pglite:<dir> (a PGlite data directory no other
                  process has open: stop \`npm start\` before restoring into .data/pglite)
  ${apiTargetHelp.replaceAll('\n', '\n  ')}`;

export interface RestoreCommandOptions {
  args: string[];
  databaseUrl?: string;
  url?: string;
  port?: number;
}

export async function restoreCommand(out: Output, options: RestoreCommandOptions): Promise<void> {
  const [source, ...extra] = options.args;
  if (!source || extra.length > 0) throw new CliError(`usage: ${USAGE}`);
  const result = await restoreBackup({
    source,
    databaseUrl: options.databaseUrl,
    api: { url: options.url, port: options.port },
    out,
  });
  const width = Math.max(...result.tables.map((t) => t.name.length), 5);
  const lines = [
    `Restored backup ${result.backup_id} into ${result.target}: ${result.rows} rows in ${result.tables.length} tables, ${result.seconds} s.`,
    ...result.tables.map((t) => `  ${t.name.padEnd(width)}  ${t.rows}`),
    `Schema: ${result.schema_version}${result.migrations_after.length ? `, brought forward to ${result.migrations_after.at(-1)}` : ''}.`,
    `Secrets inside are sealed under ENCRYPTION_KEY version ${result.encryption_key_version}: the Worker on this`,
    '  database needs that key (as ENCRYPTION_KEY, or ENCRYPTION_KEY_PREVIOUS while rotating).',
  ];
  out.result(lines.join('\n'), {
    backup_id: result.backup_id,
    tables: result.tables,
    rows: result.rows,
    seconds: result.seconds,
    schema_version: result.schema_version,
    encryption_key_version: result.encryption_key_version,
    migrations_before: result.migrations_before,
    migrations_after: result.migrations_after,
  });
}
