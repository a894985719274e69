/**
 * Bad-input fuzzing from the OpenAPI document: for every operation, fast-check builds requests
 * from its declared body fields, query parameters and path parameters, filled with wrong types,
 * missing fields, huge and unicode-edge strings, and injection strings. Whatever it sends, the
 * API must answer below 500 with the JSON error shape, and a refused request must change no row.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { openDatabase } from '../../workers/db/client';
import { api, operatorHeaders, send, testEnv } from '../integration/helpers';

// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is read loosely.
type Json = Record<string, any>;

interface Operation {
  method: string;
  path: string;
  body: Json | null;
  query: Json[];
}

/**
 * Operations that would stop the run itself rather than test input handling: switching the whole
 * deployment off, re-sealing every secret, locking or deleting the operator's own organization.
 */
const EXCLUDED = [
  'POST /api/v1/admin/emergency-shutdown',
  'POST /api/v1/admin/encryption/rotate',
  'POST /api/v1/admin/organizations/{id}/lock',
  'DELETE /api/v1/organizations/me',
];

/** Tables a refused request must leave untouched (audit rows of refusals are expected). */
const TABLES = [
  'organizations',
  'boards',
  'board_groups',
  'tasks',
  'task_comments',
  'agents',
  'approvals',
  'api_keys',
  'custom_field_definitions',
  'board_memory',
  'board_webhooks',
  'gateways',
];

const nasty = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    'null',
    "'; DROP TABLE boards; --",
    '" OR 1=1 --',
    '{"$gt": ""}',
    '../../etc/passwd',
    '\u0000',
    '\ud800',
    '🦞'.repeat(1_000),
    'a'.repeat(100_000),
    'x\r\nSet-Cookie: a=b',
    '<script>alert(1)</script>',
    '2026-02-30T25:61:00Z',
    '00000000-0000-0000-0000-000000000000',
    'NaN',
    '-1',
    '1e309',
  ),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -0, 2 ** 31, -(2 ** 31) - 1),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

let operations: Operation[] = [];
let boardId = '';

beforeAll(async () => {
  const doc = (await (await api('/api/v1/openapi.json')).json()) as Json;
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    for (const [method, op] of Object.entries(item as Json)) {
      const key = `${method.toUpperCase()} ${path}`;
      if (EXCLUDED.includes(key) || (op as Json).security?.length === 0) continue;
      const body = (op as Json).requestBody?.content?.['application/json']?.schema ?? null;
      const query = ((op as Json).parameters ?? []).filter((p: Json) => p.in === 'query');
      operations.push({ method: method.toUpperCase(), path, body: body ? resolve(doc, body) : null, query });
    }
  }
  operations = operations.filter((o) => o.path.startsWith('/api/v1/'));
  boardId = (await send('POST', '/api/v1/boards', { name: 'fuzz board' })).body.id;
});

function resolve(doc: Json, schema: Json): Json {
  if (schema.$ref) return resolve(doc, doc.components.schemas[String(schema.$ref).split('/').pop() as string]);
  return schema;
}

/** A body: the declared fields, each kept, dropped or replaced by a nasty value; sometimes not an object at all. */
const bodyFor = (schema: Json | null) => {
  const fields = Object.keys(schema?.properties ?? {});
  const objects = fc
    .tuple(
      fc.array(fc.tuple(fc.constantFrom(...(fields.length ? fields : ['x'])), nasty), { maxLength: 6 }),
      fc.dictionary(fc.string({ maxLength: 8 }), nasty, { maxKeys: 2 }),
    )
    .map(([pairs, extra]) => ({ ...extra, ...Object.fromEntries(pairs) }));
  return fc.oneof({ weight: 4, arbitrary: objects }, { weight: 1, arbitrary: nasty });
};

const paramValue = fc.oneof(fc.constant('BOARD'), fc.constant(crypto.randomUUID()), fc.string({ maxLength: 30 }));

async function counts(): Promise<Record<string, number>> {
  const db = await openDatabase(settingsSchema.parse(testEnv));
  const { rows } = await db.execute<Record<string, number>>(
    `SELECT ${TABLES.map((t) => `(SELECT count(*)::int FROM ${t}) AS ${t}`).join(', ')}`,
  );
  return rows[0] ?? {};
}

describe('bad input fuzzing', () => {
  it('never answers 5xx, always the error shape, and writes nothing when it refuses', async () => {
    expect(operations.length).toBeGreaterThan(50);
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...operations).chain((op) =>
          fc.record({
            op: fc.constant(op),
            body: bodyFor(op.body),
            params: fc.array(paramValue, { minLength: 4, maxLength: 4 }),
            query: fc.dictionary(
              fc.constantFrom(...(op.query.length ? op.query.map((q) => String(q.name)) : ['limit'])),
              fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('-1', '1e9', 'true', '%00', '💥')),
              { maxKeys: 3 },
            ),
          }),
        ),
        async ({ op, body, params, query }) => {
          let i = 0;
          const path = op.path.replace(/\{[^}]+\}/g, () => {
            const value = params[i++] ?? 'x';
            return encodeURIComponent(value === 'BOARD' ? boardId : value);
          });
          const search = new URLSearchParams(query as Record<string, string>).toString();
          const before = op.method === 'GET' ? null : await counts();
          const res = await api(`${path}${search ? `?${search}` : ''}`, {
            method: op.method,
            headers: operatorHeaders({ 'Content-Type': 'application/json' }),
            body: op.method === 'GET' || op.method === 'DELETE' ? undefined : JSON.stringify(body),
          });
          const text = await res.text();
          const label = `${op.method} ${op.path} → ${res.status}: ${text.slice(0, 300)}`;
          seen.set(`${op.method} ${op.path}`, (seen.get(`${op.method} ${op.path}`) ?? 0) + 1);
          expect(res.status, label).toBeLessThan(500);
          if (res.status >= 400) {
            const parsed = JSON.parse(text) as Json;
            expect(parsed.error?.code, label).toEqual(expect.any(String));
            expect(parsed.error?.message, label).toEqual(expect.any(String));
            expect(parsed.request_id, label).toEqual(expect.any(String));
            if (before) expect(await counts(), label).toEqual(before);
          }
        },
      ),
      // A failure prints its seed and path: FUZZ_SEED=<seed> reproduces it.
      { numRuns: Number(process.env.FUZZ_RUNS ?? 1_500), seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );
    // Most operations were exercised at least once.
    expect(seen.size).toBeGreaterThan(operations.length * 0.8);
    console.log(
      `fuzz: ${[...seen.values()].reduce((a, b) => a + b, 0)} requests over ${seen.size} of ${operations.length} operations`,
    );
  }, 600_000);
});
