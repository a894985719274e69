import { and, eq, sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs } from '../../workers/db/schema';
import { activityEvents } from '../../workers/db/schema-domain';
import { sha256Hex } from '../../workers/lib/crypto';
import { api, bearer, operatorHeaders, testEnv } from './helpers';

async function send(method: string, path: string, body?: unknown, headers: Record<string, string> = operatorHeaders()) {
  const res = await api(path, {
    method,
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes and assert on them.
  return { status: res.status, body: (text ? JSON.parse(text) : null) as Record<string, any> };
}

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

async function board() {
  const { status, body } = await send('POST', '/api/v1/boards', { name: 'memory board' });
  expect(status).toBe(201);
  return body as { id: string; organization_id: string };
}

async function key(scopes: string[]) {
  const { status, body } = await send('POST', '/api/v1/api-keys', { name: 'memory key', scopes });
  expect(status).toBe(201);
  return bearer(body.secret);
}

const remember = (boardId: string, entry: Record<string, unknown>, headers = operatorHeaders()) =>
  send('POST', `/api/v1/boards/${boardId}/memory`, entry, headers);

const eventFor = async (memoryId: string) => {
  const [event] = await db
    .select()
    .from(activityEvents)
    .where(sql`${activityEvents.payload}->>'memory_id' = ${memoryId}`);
  return event;
};

describe('board memory and chat', () => {
  it('stores an entry with its author, audits it and records memory.created', async () => {
    const b = await board();
    const { status, body } = await remember(b.id, {
      content: 'The staging database is at db-2.',
      tags: ['infra', 'infra', 'facts'],
      source: 'runbook',
    });
    expect(status).toBe(201);
    expect(body).toMatchObject({
      board_id: b.id,
      content: 'The staging database is at db-2.',
      tags: ['infra', 'facts'],
      source: 'runbook',
      author_type: 'user',
    });
    expect(body.author_id).toMatch(/^[0-9a-f-]{36}$/);
    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'memory.create'), eq(auditLogs.targetId, body.id)));
    expect(audit).toMatchObject({ success: true, actorType: 'user' });
    const event = await eventFor(body.id);
    expect(event).toMatchObject({ type: 'memory.created', boardId: b.id, message: 'Memory added from runbook' });
    expect(event?.payload).toMatchObject({ tags: ['infra', 'facts'], content: null });
  });

  it('turns entries tagged chat into chat messages (chat.message events)', async () => {
    const b = await board();
    const long = `hello team ${'x'.repeat(400)}`;
    const { body } = await remember(b.id, { content: long, tags: ['chat'] });
    const event = await eventFor(body.id);
    expect(event).toMatchObject({ type: 'chat.message', boardId: b.id });
    expect(event?.message).toBe(long.slice(0, 280));
    expect(event?.payload).toMatchObject({ content: long.slice(0, 280), author_type: 'user' });
  });

  it('lists newest first, filters by tag and pages with limit and offset', async () => {
    const b = await board();
    const written: string[] = [];
    for (const [i, tags] of [['chat'], ['note'], ['chat'], ['chat', 'note']].entries()) {
      written.push((await remember(b.id, { content: `entry ${i}`, tags })).body.id);
    }
    const all = await send('GET', `/api/v1/boards/${b.id}/memory`);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ total: 4, limit: 50, offset: 0 });
    expect(all.body.items.map((m: { id: string }) => m.id)).toEqual([...written].reverse());

    const chat = await send('GET', `/api/v1/boards/${b.id}/memory?tag=chat`);
    expect(chat.body.total).toBe(3);
    expect(chat.body.items.map((m: { content: string }) => m.content)).toEqual(['entry 3', 'entry 2', 'entry 0']);

    const page = await send('GET', `/api/v1/boards/${b.id}/memory?tag=chat&limit=1&offset=1`);
    expect(page.body).toMatchObject({ total: 3, limit: 1, offset: 1 });
    expect(page.body.items.map((m: { content: string }) => m.content)).toEqual(['entry 2']);
    expect((await send('GET', `/api/v1/boards/${b.id}/memory?tag=none`)).body).toMatchObject({ total: 0, items: [] });
  });

  it('lets read keys read and write keys write; 403 for read keys writing; 404 across organizations', async () => {
    const b = await board();
    const reader = await key(['read']);
    const writer = await key(['write']);
    expect((await remember(b.id, { content: 'no' }, reader)).status).toBe(403);
    const byKey = await remember(b.id, { content: 'from automation' }, writer);
    expect(byKey.status).toBe(201);
    expect(byKey.body).toMatchObject({ author_type: 'api_key', tags: [], source: null });
    expect((await send('GET', `/api/v1/boards/${b.id}/memory`, undefined, reader)).body.total).toBe(1);

    const org = crypto.randomUUID();
    const secret = `mce_memforeign${crypto.randomUUID().replaceAll('-', '')}`;
    await db.execute(sql`INSERT INTO organizations (id, name) VALUES (${org}, 'memory foreign')`);
    await db.execute(sql`INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes)
      VALUES (${org}, 'foreign admin', 'mce_memfor', ${await sha256Hex(secret)}, array['admin'])`);
    const foreign = bearer(secret);
    expect((await send('GET', `/api/v1/boards/${b.id}/memory`, undefined, foreign)).status).toBe(404);
    expect((await remember(b.id, { content: 'intrusion' }, foreign)).status).toBe(404);
    expect((await remember(crypto.randomUUID(), { content: 'nowhere' })).status).toBe(404);
    expect((await send('GET', `/api/v1/boards/${b.id}/memory`)).body.total).toBe(1);
  });

  it('validates entries with 422 naming each field', async () => {
    const b = await board();
    const bad = await remember(b.id, {
      content: 'x'.repeat(20_001),
      tags: Array.from({ length: 21 }, (_, i) => `t${i}`),
      source: 's'.repeat(101),
    });
    expect(bad.status).toBe(422);
    expect(bad.body.error.details.issues.map((i: { path: string }) => i.path).sort()).toEqual([
      'content',
      'source',
      'tags',
    ]);
    expect((await remember(b.id, { content: '' })).status).toBe(422);
    expect((await remember(b.id, { content: 'ok', tags: ['x'.repeat(51)] })).body.error.details.issues[0].path).toBe(
      'tags.0',
    );
    expect((await remember(b.id, { content: 'ok', tags: 'chat' })).status).toBe(422);
    expect((await send('GET', `/api/v1/boards/${b.id}/memory?limit=0`)).status).toBe(422);
    expect((await remember(b.id, { content: 'x'.repeat(20_000) })).status).toBe(201);
  });
});
