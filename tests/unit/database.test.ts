import { describe, expect, it, vi } from 'vitest';
import { createApp } from '../../workers/app';
import { settingsSchema } from '../../workers/config';
import { openDatabase } from '../../workers/db/client';
import { AppError } from '../../workers/lib/errors';
import { testEnv } from '../integration/helpers';

const settingsFor = (endpoint: string) => settingsSchema.parse({ ...testEnv, DATABASE_HTTP_ENDPOINT: endpoint });

describe('openDatabase', () => {
  it('refuses with 503 schema_outdated and the fix when the database is behind', async () => {
    const error = await openDatabase(settingsFor(testEnv.TEST_EMPTY_SQL_ENDPOINT)).catch((e) => e);
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ status: 503, code: 'schema_outdated' });
    expect(error.message).toContain('npm run mce -- migrate');
  });

  it('hands out a working drizzle database when the schema is current', async () => {
    const db = await openDatabase(settingsFor(testEnv.DATABASE_HTTP_ENDPOINT));
    const rows = await db.execute('select 41 + 1 as answer');
    expect(rows.rows[0]).toEqual({ answer: 42 });
  });
});

describe('a database route while the database is unreachable', () => {
  it('answers 503 database_unavailable with Retry-After, not 500', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const app = createApp();
    app.get('/api/v1/probe-db', async (c) => {
      const db = await openDatabase(c.var.settings);
      return c.json(await db.execute('select 1'));
    });
    const res = await app.request(
      '/api/v1/probe-db',
      {},
      { ...testEnv, DATABASE_HTTP_ENDPOINT: 'http://127.0.0.1:9/sql' },
    );
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('database_unavailable');
    vi.restoreAllMocks();
  });
});
