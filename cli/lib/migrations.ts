/**
 * Applies drizzle-kit's migrations through the Neon HTTP driver, each migration in one atomic
 * batch together with its bookkeeping row (drizzle's own table, so drizzle-kit agrees with us).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NeonQueryFunction } from '@neondatabase/serverless';

export const MIGRATIONS_DIR = join(import.meta.dirname, '..', '..', 'migrations');
/** Serializes concurrent runners; any constant works as long as every runner uses the same one. */
const LOCK_KEY = 7_244_001;

export interface Migration {
  tag: string;
  /** drizzle-kit's timestamp; stored as created_at, and what the Worker compares against. */
  when: number;
  hash: string;
  statements: string[];
}

export interface MigrationState extends Migration {
  applied: boolean;
}

type Sql = NeonQueryFunction<false, false>;

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const journal = JSON.parse(readFileSync(join(dir, 'meta', '_journal.json'), 'utf8')) as {
    entries: { tag: string; when: number }[];
  };
  return journal.entries.map(({ tag, when }) => {
    const text = readFileSync(join(dir, `${tag}.sql`), 'utf8');
    return {
      tag,
      when,
      hash: createHash('sha256').update(text).digest('hex'),
      statements: text
        .split('--> statement-breakpoint')
        .map((s) => s.trim())
        .filter(Boolean),
    };
  });
}

/** The newest applied migration's timestamp, 0 when none is. */
export async function lastApplied(sql: Sql): Promise<number> {
  try {
    const rows = await sql.query('SELECT coalesce(max(created_at), 0)::text AS last FROM drizzle.__drizzle_migrations');
    return Number((rows[0] as { last: string }).last);
  } catch (err) {
    // No bookkeeping schema or table yet: nothing applied.
    const code = (err as { code?: string }).code;
    if (code === '3F000' || code === '42P01') return 0;
    throw err;
  }
}

export async function migrationStatus(sql: Sql, migrations = readMigrations()): Promise<MigrationState[]> {
  const last = await lastApplied(sql);
  return migrations.map((m) => ({ ...m, applied: m.when <= last }));
}

/** Applies every pending migration in order; returns the tags it applied. */
export async function migrate(
  sql: Sql,
  migrations = readMigrations(),
  onApplied: (tag: string, index: number, total: number) => void = () => {},
): Promise<string[]> {
  const pending = (await migrationStatus(sql, migrations)).filter((m) => !m.applied);
  const applied: string[] = [];
  for (const [index, m] of pending.entries()) {
    try {
      await sql.transaction([
        sql.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]),
        sql.query('CREATE SCHEMA IF NOT EXISTS drizzle'),
        sql.query(
          'CREATE TABLE IF NOT EXISTS drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)',
        ),
        ...m.statements.map((s) => sql.query(s)),
        sql.query('INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ($1, $2)', [m.hash, m.when]),
      ]);
    } catch (err) {
      // Another runner may have applied it while we waited for the lock; that is success.
      if ((await lastApplied(sql)) < m.when) throw err;
    }
    applied.push(m.tag);
    onApplied(m.tag, index + 1, pending.length);
  }
  return applied;
}
