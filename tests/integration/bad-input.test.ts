import { sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { openDatabase } from '../../workers/db/client';
import { api, appWith, json, operatorHeaders, testEnv } from './helpers';

const send = (method: string, path: string, body: unknown, headers = operatorHeaders()) =>
  api(path, { method, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

let boardId = '';

beforeAll(async () => {
  const board = await json(await send('POST', '/api/v1/boards', { name: 'bad input' }));
  boardId = board.id;
});

describe('values Postgres refuses', () => {
  it('answers 422 for a NUL character in text and in a filter', async () => {
    const created = await send('POST', `/api/v1/boards/${boardId}/tasks`, { title: 'a\u0000b' });
    expect(created.status).toBe(422);
    expect((await json(created)).error.code).toBe('invalid_input');
    const filtered = await api(`/api/v1/boards/${boardId}/tasks?tag=a%00`, { headers: operatorHeaders() });
    expect(filtered.status).toBe(422);
  });

  it('answers 422 for a timestamp Postgres cannot store', async () => {
    const res = await send('POST', `/api/v1/boards/${boardId}/tasks`, {
      title: 'ancient',
      due_at: '0000-01-01T00:00:00Z',
    });
    expect(res.status).toBe(422);
  });
});

describe('board rules', () => {
  it('refuses a write-scoped API key that tries to switch off the approval gate', async () => {
    const key = await json(await send('POST', '/api/v1/api-keys', { name: 'writer', scopes: ['write'] }));
    const res = await send(
      'PATCH',
      `/api/v1/boards/${boardId}`,
      { require_approval_for_done: false },
      { Authorization: `Bearer ${key.secret}` },
    );
    expect(res.status).toBe(403);
    const board = await json(await api(`/api/v1/boards/${boardId}`, { headers: operatorHeaders() }));
    expect(board.require_approval_for_done).toBe(true);
  });
});

describe('failed authentication', () => {
  it('answers 429 per client IP after AUTH_FAILURE_LIMIT failures, writing no more audit rows', async () => {
    const request = appWith({ AUTH_FAILURE_LIMIT: '3/60' });
    const ip = `203.0.113.${Math.floor(Math.random() * 200) + 20}`;
    const bad = (n: number) => ({ Authorization: `Bearer mce_flood${n}`, 'CF-Connecting-IP': ip });
    for (let n = 0; n < 3; n++) expect((await request('/api/v1/api-keys', { headers: bad(n) })).status).toBe(401);
    const limited = await request('/api/v1/api-keys', { headers: bad(3) });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // Even a good credential from that address waits; another address is unaffected.
    const good = await request('/api/v1/api-keys', { headers: operatorHeaders({ 'CF-Connecting-IP': ip }) });
    expect(good.status).toBe(429);
    const elsewhere = await request('/api/v1/api-keys', {
      headers: operatorHeaders({ 'CF-Connecting-IP': '198.51.100.7' }),
    });
    expect(elsewhere.status).toBe(200);

    const db = await openDatabase(settingsSchema.parse(testEnv));
    const rows = await db.execute<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM audit_logs WHERE action = 'auth.failed' AND ip = ${ip}`,
    );
    expect(rows.rows[0]?.n).toBe(3);
  });
});
