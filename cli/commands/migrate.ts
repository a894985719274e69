import { withDatabase } from '../lib/database.ts';
import { migrate, migrationStatus, readMigrations } from '../lib/migrations.ts';
import type { Output } from '../lib/output.ts';

export const migrateHelp = `mce migrate [--status] [--json]
  Applies pending migrations to DATABASE_URL (through DATABASE_HTTP_ENDPOINT when set).
  --status  list each migration as applied or pending and change nothing`;

export async function migrateCommand(out: Output, options: { status: boolean }): Promise<void> {
  const migrations = readMigrations();
  await withDatabase(async (sql) => {
    if (options.status) {
      const states = await migrationStatus(sql, migrations);
      const pending = states.filter((s) => !s.applied).length;
      const lines = states.map((s) => `  [${s.applied ? 'applied' : 'pending'}] ${s.tag}`);
      lines.push(pending === 0 ? 'Database is up to date.' : `${pending} pending: run \`npm run mce -- migrate\`.`);
      out.result(lines.join('\n'), {
        migrations: states.map(({ tag, when, applied }) => ({ tag, created_at: when, applied })),
        pending,
      });
      return;
    }
    const pending = (await migrationStatus(sql, migrations)).filter((s) => !s.applied).length;
    const bar = out.progress('Migrating', pending);
    const applied = await migrate(sql, migrations, (tag) => bar.tick(tag));
    bar.done();
    out.result(applied.length === 0 ? 'Database is up to date.' : `Applied ${applied.length}: ${applied.join(', ')}`, {
      applied,
    });
  });
}
