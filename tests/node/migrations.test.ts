/** Migrations applied through the Neon driver and the local endpoint, on a fresh test database. */
import { type NeonQueryFunction, neon, neonConfig } from '@neondatabase/serverless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, migrationStatus, readMigrations } from '../../cli/lib/migrations.ts';
import { type SqlEndpoint, startSqlEndpoint } from '../../cli/sql-endpoint/server.ts';
import { createTestDatabase, type TestDatabase, testToken } from '../support/databases.ts';

const tags = readMigrations().map((m) => m.tag);

/** A fresh database behind its own endpoint, with a driver pointed at it. */
async function openDatabase() {
  const database: TestDatabase = await createTestDatabase();
  const token = testToken();
  const endpoint: SqlEndpoint = await startSqlEndpoint({ backend: database.backend, token });
  neonConfig.fetchEndpoint = endpoint.url;
  const sql: NeonQueryFunction<false, false> = neon('postgresql://test@localhost/test', { authToken: token });
  return {
    sql,
    close: async () => {
      await endpoint.close();
      await database.drop();
    },
  };
}

describe('migrate on a fresh database', () => {
  let db: Awaited<ReturnType<typeof openDatabase>>;
  beforeAll(async () => {
    db = await openDatabase();
  });
  afterAll(async () => db?.close());

  it('has migrations to apply', () => {
    expect(tags.length).toBeGreaterThan(0);
  });

  it('shows every migration pending before the first run', async () => {
    const states = await migrationStatus(db.sql);
    expect(states.map((s) => [s.tag, s.applied])).toEqual(tags.map((tag) => [tag, false]));
  });

  it('applies every migration and returns their tags', async () => {
    const reported: string[] = [];
    expect(await migrate(db.sql, undefined, (tag) => reported.push(tag))).toEqual(tags);
    expect(reported).toEqual(tags);
  });

  it('then shows every migration applied', async () => {
    const states = await migrationStatus(db.sql);
    expect(states.every((s) => s.applied)).toBe(true);
  });

  it('applies nothing the second time', async () => {
    expect(await migrate(db.sql)).toEqual([]);
  });

  it('creates audit_logs with its actor_type check', async () => {
    await db.sql`INSERT INTO audit_logs (actor_type, action) VALUES ('system', 'test.ok')`;
    expect(await db.sql`SELECT actor_type, success, details FROM audit_logs`).toEqual([
      { actor_type: 'system', success: true, details: {} },
    ]);
    await expect(
      db.sql`INSERT INTO audit_logs (actor_type, action) VALUES ('robot', 'test.bad')`,
    ).rejects.toMatchObject({ code: '23514', constraint: 'audit_logs_actor_type_check' });
  });
});

describe('concurrent migrate', () => {
  let db: Awaited<ReturnType<typeof openDatabase>>;
  beforeAll(async () => {
    db = await openDatabase();
  });
  afterAll(async () => db?.close());

  it('lets two runners finish and records each migration once', async () => {
    const results = await Promise.all([migrate(db.sql), migrate(db.sql)]);
    for (const applied of results) expect(applied).toEqual(tags);
    const [row] =
      await db.sql`SELECT count(*)::int AS n, count(DISTINCT hash)::int AS hashes FROM drizzle.__drizzle_migrations`;
    expect(row).toEqual({ n: tags.length, hashes: tags.length });
    expect((await migrationStatus(db.sql)).every((s) => s.applied)).toBe(true);
  });
});
