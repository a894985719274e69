/**
 * The Worker's only way to Postgres: Neon's HTTP driver under drizzle. Before handing out a
 * database it checks, once per isolate until it passes, that the schema is not behind the code.
 */
import { type NeonQueryFunction, neon, neonConfig } from '@neondatabase/serverless';
import { drizzle, type NeonHttpDatabase } from 'drizzle-orm/neon-http';
import journal from '../../migrations/meta/_journal.json';
import type { Settings } from '../config';
import { AppError } from '../lib/errors';
import * as schema from './schema';

export type Database = NeonHttpDatabase<typeof schema>;
type Sql = NeonQueryFunction<false, false>;

const newest = journal.entries.at(-1);
/** The migration this build was made for (drizzle-kit's timestamp and tag). */
export const EXPECTED_SCHEMA = { tag: newest?.tag ?? 'none', version: newest?.when ?? 0 };
export const MIGRATE_COMMAND = 'npm run mce -- migrate';

interface Connection {
  sql: Sql;
  db: Database;
  schemaChecked: boolean;
}

const connections = new WeakMap<Settings, Connection>();

function connection(settings: Settings): Connection {
  // The endpoint is a driver-wide setting; unset in production restores Neon's own.
  neonConfig.fetchEndpoint = settings.DATABASE_HTTP_ENDPOINT as string;
  let conn = connections.get(settings);
  if (!conn) {
    const sql = neon(
      settings.DATABASE_URL,
      settings.DATABASE_HTTP_TOKEN ? { authToken: settings.DATABASE_HTTP_TOKEN } : {},
    );
    conn = { sql, db: drizzle({ client: sql, schema }), schemaChecked: false };
    connections.set(settings, conn);
  }
  return conn;
}

export function sqlFor(settings: Settings): Sql {
  return connection(settings).sql;
}

/** True when the driver could not reach Postgres at all (as opposed to Postgres rejecting SQL). */
export function isDatabaseUnreachable(err: unknown): boolean {
  return err instanceof Error && err.name === 'NeonDbError' && typeof (err as { code?: unknown }).code !== 'string';
}

export interface SchemaState {
  ok: boolean;
  applied: number;
  expected: number;
  expected_tag: string;
}

/** Reads the newest applied migration in one query; a database without any counts as 0. */
export async function schemaState(sql: Sql, signal?: AbortSignal): Promise<SchemaState> {
  let applied = 0;
  try {
    const rows = await sql.query(
      'SELECT coalesce(max(created_at), 0)::text AS applied FROM drizzle.__drizzle_migrations',
      [],
      {
        fetchOptions: signal ? { signal } : {},
      },
    );
    applied = Number((rows[0] as { applied: string }).applied);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== '3F000' && code !== '42P01') throw err;
  }
  return {
    ok: applied >= EXPECTED_SCHEMA.version,
    applied,
    expected: EXPECTED_SCHEMA.version,
    expected_tag: EXPECTED_SCHEMA.tag,
  };
}

export function schemaOutdated(state: SchemaState): AppError {
  return new AppError(
    503,
    'schema_outdated',
    `The database schema is behind this release. Run \`${MIGRATE_COMMAND}\`.`,
    {
      details: { expected_migration: state.expected_tag, fix: MIGRATE_COMMAND },
      headers: { 'Retry-After': '30' },
    },
  );
}

/** The database for a request; 503 `schema_outdated` instead of failing later on a missing column. */
export async function openDatabase(settings: Settings): Promise<Database> {
  const conn = connection(settings);
  if (!conn.schemaChecked) {
    const state = await schemaState(conn.sql);
    if (!state.ok) throw schemaOutdated(state);
    // Schemas only move forward, so one pass per isolate is enough.
    conn.schemaChecked = true;
  }
  return conn.db;
}
