/** Test databases: in-memory PGlite, or a fresh PostgreSQL database per run when TEST_DATABASE_URL is set. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgliteBackend, postgresBackend, type SqlBackend } from '../../cli/sql-endpoint/backends.ts';

export interface TestDatabase {
  backend: SqlBackend;
  /** Connection string of the PostgreSQL database, when there is one. */
  url?: string;
  drop(): Promise<void>;
}

export function testPostgresUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL || undefined;
}

/** A database of its own; `drop()` closes it and removes it from the server. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = testPostgresUrl();
  if (!adminUrl) {
    const backend = await pgliteBackend();
    return { backend, drop: () => backend.close() };
  }
  const name = `mce_test_${Date.now()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const backend = postgresBackend(url.toString());
  return {
    backend,
    url: url.toString(),
    async drop() {
      await backend.close();
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

export const testToken = () => randomBytes(32).toString('base64url');
