import { describe, expect, it } from 'vitest';
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
