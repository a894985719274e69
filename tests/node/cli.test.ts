/** The `mce` CLI as an operator runs it: a child process, pointed at a test database by environment. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMigrations } from '../../cli/lib/migrations.ts';
import { type SqlEndpoint, startSqlEndpoint } from '../../cli/sql-endpoint/server.ts';
import { createTestDatabase, type TestDatabase, testToken } from '../support/databases.ts';
import { type Run, runMce } from '../support/mce.ts';

const tags = readMigrations().map((m) => m.tag);

let database: TestDatabase;
let endpoint: SqlEndpoint;
let token: string;

function mce(...args: string[]): Promise<Run> {
  const { DEV_POSTGRES_URL: _ignored, ...inherited } = process.env;
  return runMce(args, {
    ...inherited,
    // All three, so nothing falls back to a developer's .dev.vars.
    DATABASE_URL: 'postgresql://test@localhost/test',
    DATABASE_HTTP_ENDPOINT: endpoint.url,
    DATABASE_HTTP_TOKEN: token,
  });
}

beforeAll(async () => {
  database = await createTestDatabase();
  token = testToken();
  endpoint = await startSqlEndpoint({ backend: database.backend, token });
});

afterAll(async () => {
  await endpoint?.close();
  await database?.drop();
});

describe('mce migrate', () => {
  it('--status --json lists every migration as pending', async () => {
    const run = await mce('migrate', '--status', '--json');
    expect(run.code).toBe(0);
    const status = JSON.parse(run.stdout);
    expect(status.pending).toBe(tags.length);
    expect(status.migrations).toEqual(
      tags.map((tag) => ({ tag, created_at: expect.any(Number) as number, applied: false })),
    );
  });

  it('--json applies the pending migrations and names them', async () => {
    const run = await mce('migrate', '--json');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ applied: tags });
    // The migrations landed in the database the environment named, not some fallback.
    const recorded = await database.backend.query({
      query: 'SELECT count(*) FROM drizzle.__drizzle_migrations',
      params: [],
    });
    expect(recorded.rows).toEqual([[String(tags.length)]]);
  });

  it('--status prints each migration as applied and says the database is up to date', async () => {
    const run = await mce('migrate', '--status');
    expect(run.code).toBe(0);
    for (const tag of tags) expect(run.stdout).toContain(`[applied] ${tag}`);
    expect(run.stdout).not.toContain('[pending]');
    expect(run.stdout).toContain('up to date');
  });

  it('applies nothing when run again', async () => {
    const run = await mce('migrate', '--json');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ applied: [] });
  });
});

describe('mce usage', () => {
  it('rejects an unknown command with a message on stderr', async () => {
    const run = await mce('frobnicate');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('unknown command "frobnicate"');
    expect(run.stdout).toBe('');
  });

  it('rejects a --port that is not a number', async () => {
    const run = await mce('serve-sql', '--port', 'abc');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('--port must be a port number');
  });

  it('--help lists the commands', async () => {
    const run = await mce('--help');
    expect(run.code).toBe(0);
    for (const command of ['start', 'migrate', 'serve-sql', 'build-assets']) {
      expect(run.stdout).toContain(`mce ${command}`);
    }
  });
});
