/**
 * The local SQL endpoint, driven by the real Neon driver exactly as the Worker drives it, over
 * in-memory PGlite and (when TEST_DATABASE_URL is set) a fresh PostgreSQL database.
 */
import { type NeonQueryFunction, neon, neonConfig } from '@neondatabase/serverless';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pgliteBackend } from '../../cli/sql-endpoint/backends.ts';
import { type SqlEndpoint, startSqlEndpoint } from '../../cli/sql-endpoint/server.ts';
import { createTestDatabase, type TestDatabase, testPostgresUrl, testToken } from '../support/databases.ts';

const DATABASE_URL = 'postgresql://test@localhost/test';

const backends: { name: string; open: () => Promise<TestDatabase> }[] = [
  {
    name: 'PGlite',
    open: async () => {
      const backend = await pgliteBackend();
      return { backend, drop: () => backend.close() };
    },
  },
  ...(testPostgresUrl() ? [{ name: 'PostgreSQL', open: createTestDatabase }] : []),
];

/** The error a rejected promise carries, so its fields can be checked. */
async function failure(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    return err as Record<string, unknown>;
  }
  throw new Error('expected the query to fail');
}

describe.each(backends)('SQL endpoint over $name', ({ open }) => {
  let database: TestDatabase;
  let endpoint: SqlEndpoint;
  let token: string;
  let sql: NeonQueryFunction<false, false>;

  beforeAll(async () => {
    database = await open();
    token = testToken();
    endpoint = await startSqlEndpoint({ backend: database.backend, token });
    sql = neon(DATABASE_URL, { authToken: token });
  });

  // The driver's endpoint is global; point it at this suite's endpoint before every test.
  beforeEach(() => {
    neonConfig.fetchEndpoint = endpoint.url;
  });

  afterAll(async () => {
    await endpoint?.close();
    await database?.drop();
  });

  describe('types', () => {
    it('returns int8 and numeric as exact strings', async () => {
      const [row] =
        await sql`SELECT ${'9007199254740993'}::int8 AS big, '12345678901234567890.123456789'::numeric AS exact`;
      expect(row).toEqual({ big: '9007199254740993', exact: '12345678901234567890.123456789' });
    });

    it('returns jsonb as an object', async () => {
      const value = { a: 1, b: [true, null], c: 'ünïcode "quoted"' };
      const [row] = await sql`SELECT ${JSON.stringify(value)}::jsonb AS j`;
      expect(row?.j).toEqual(value);
    });

    it('returns timestamptz as a Date at the right instant', async () => {
      const [row] = await sql`SELECT ${'2024-03-01 14:34:56.789+02'}::timestamptz AS t`;
      expect(row?.t).toBeInstanceOf(Date);
      expect(row?.t).toEqual(new Date('2024-03-01T12:34:56.789Z'));
    });

    it('round-trips bytea from a Buffer parameter', async () => {
      const [row] =
        await sql`SELECT ${Buffer.from([0, 1, 255])}::bytea AS b, octet_length(${Buffer.from([7])}::bytea) AS len`;
      expect(Buffer.isBuffer(row?.b)).toBe(true);
      expect(row?.b).toEqual(Buffer.from([0, 1, 255]));
      expect(row?.len).toBe(1);
    });

    it('returns int[] and text[] as arrays', async () => {
      const [row] = await sql`SELECT ARRAY[1, 2, 3]::int[] AS ints, ARRAY['a', 'b c', NULL, '{x}']::text[] AS texts`;
      expect(row).toEqual({ ints: [1, 2, 3], texts: ['a', 'b c', null, '{x}'] });
    });

    it('accepts arrays as parameters', async () => {
      const [row] = await sql`SELECT ${[4, 5]}::int[] AS ints, ${['q "r"', null]}::text[] AS texts`;
      expect(row).toEqual({ ints: [4, 5], texts: ['q "r"', null] });
    });

    it('returns null for SQL NULL and for a null parameter', async () => {
      const [row] = await sql`SELECT NULL::text AS a, ${null}::int AS b`;
      expect(row).toEqual({ a: null, b: null });
    });
  });

  describe('queries', () => {
    beforeAll(async () => {
      neonConfig.fetchEndpoint = endpoint.url;
      await sql`CREATE TABLE items (id int PRIMARY KEY, name text CONSTRAINT items_name_key UNIQUE)`;
      await sql`INSERT INTO items VALUES (1, 'first')`;
    });

    const count = async () => Number((await sql`SELECT count(*) AS n FROM items`)[0]?.n);

    it('binds parameters as values, never as SQL', async () => {
      const hostile = "x'); DROP TABLE items; --";
      const rows = await sql.query('SELECT $1::text AS s, $2::int + 1 AS n', [hostile, 41]);
      expect(rows).toEqual([{ s: hostile, n: 42 }]);
      expect(await count()).toBe(1);
    });

    it('reports a unique violation with code, constraint and detail', async () => {
      const err = await failure(sql`INSERT INTO items VALUES (2, 'first')`);
      expect(err.code).toBe('23505');
      expect(err.constraint).toBe('items_name_key');
      expect(err.detail).toContain('(name)=(first)');
    });

    it('reports a syntax error as 42601 and keeps answering afterwards', async () => {
      const err = await failure(sql.query('SELEC 1'));
      expect(err.code).toBe('42601');
      expect(await sql`SELECT 1 AS one`).toEqual([{ one: 1 }]);
    });

    it('commits every statement of a batch', async () => {
      const results = await sql.transaction([
        sql`INSERT INTO items VALUES (10, 'ten')`,
        sql`INSERT INTO items VALUES (11, 'eleven')`,
        sql`SELECT name FROM items WHERE id >= 10 ORDER BY id`,
      ]);
      expect(results[2]).toEqual([{ name: 'ten' }, { name: 'eleven' }]);
      expect(await count()).toBe(3);
    });

    it('rolls back the whole batch when one statement fails', async () => {
      const before = await count();
      const err = await failure(
        sql.transaction([sql`INSERT INTO items VALUES (20, 'twenty')`, sql`INSERT INTO items VALUES (21, 'first')`]),
      );
      expect(err.code).toBe('23505');
      expect(await count()).toBe(before);
      expect(await sql`SELECT id FROM items WHERE id = 20`).toEqual([]);
    });

    it('honours a read-only serializable batch', async () => {
      const options = { isolationLevel: 'Serializable', readOnly: true } as const;
      const [rows] = await sql.transaction([sql`SELECT count(*)::int AS n FROM items`], options);
      expect(rows).toEqual([{ n: await count() }]);
      const err = await failure(sql.transaction([sql`INSERT INTO items VALUES (30, 'thirty')`], options));
      expect(err.code).toBe('25006');
      expect(await sql`SELECT id FROM items WHERE id = 30`).toEqual([]);
    });
  });

  describe('security', () => {
    const request = (init: { method?: string; path?: string; headers?: Record<string, string>; body?: string }) => {
      const url = new URL(endpoint.url);
      if (init.path) url.pathname = init.path;
      const method = init.method ?? 'POST';
      return fetch(url, {
        method,
        headers: init.headers ?? driverHeaders(),
        body: method === 'GET' ? undefined : (init.body ?? JSON.stringify({ query: 'SELECT 1', params: [] })),
      });
    };
    const driverHeaders = (extra: Record<string, string> = {}) => ({
      Authorization: `Bearer ${token}`,
      'Neon-Connection-String': DATABASE_URL,
      'Neon-Raw-Text-Output': 'true',
      'Neon-Array-Mode': 'true',
      ...extra,
    });
    const withoutHeader = (name: string) =>
      Object.fromEntries(Object.entries(driverHeaders()).filter(([key]) => key !== name));

    it('answers a well-formed request', async () => {
      const res = await request({});
      expect(res.status).toBe(200);
      expect(((await res.json()) as { rows: unknown }).rows).toEqual([['1']]);
    });

    it('refuses a request without a bearer token', async () => {
      expect((await request({ headers: withoutHeader('Authorization') })).status).toBe(401);
    });

    it('refuses a wrong token', async () => {
      const res = await request({ headers: driverHeaders({ Authorization: `Bearer ${testToken()}` }) });
      expect(res.status).toBe(401);
    });

    it('refuses browser requests carrying an Origin', async () => {
      const res = await request({ headers: driverHeaders({ Origin: 'https://evil.example' }) });
      expect(res.status).toBe(403);
    });

    it('refuses a request without Neon-Connection-String', async () => {
      expect((await request({ headers: withoutHeader('Neon-Connection-String') })).status).toBe(400);
    });

    it('refuses GET and other paths', async () => {
      expect((await request({ method: 'GET' })).status).toBe(405);
      expect((await request({ path: '/other' })).status).toBe(404);
    });

    it('refuses a malformed JSON body and keeps serving', async () => {
      expect((await request({ body: '{"query": ' })).status).toBe(400);
      expect(await sql`SELECT 2 AS two`).toEqual([{ two: 2 }]);
    });

    it('will not listen beyond loopback or with a short token', async () => {
      await expect(startSqlEndpoint({ backend: database.backend, token, host: '0.0.0.0' })).rejects.toThrow(/loopback/);
      await expect(startSqlEndpoint({ backend: database.backend, token: 'too-short' })).rejects.toThrow(/at least 32/);
    });
  });
});
