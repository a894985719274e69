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
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

async function createKey(scopes: string[]) {
  const { status, body } = await send('POST', '/api/v1/api-keys', { name: 'groups key', scopes });
  expect(status).toBe(201);
  return bearer(body.secret);
}

/** An admin API key of a fresh organization. */
async function foreignAdminKey() {
  const org = crypto.randomUUID();
  const secret = `mce_groupsforeign${crypto.randomUUID().replaceAll('-', '')}`;
  await db.execute(sql`INSERT INTO organizations (id, name) VALUES (${org}, 'groups foreign')`);
  await db.execute(sql`INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes)
    VALUES (${org}, 'foreign admin', 'mce_groups', ${await sha256Hex(secret)}, array['admin'])`);
  return bearer(secret);
}

const eventTypes = async (groupId: string) =>
  (
    await db
      .select()
      .from(activityEvents)
      .where(sql`${activityEvents.payload}->>'board_group_id' = ${groupId}`)
      .orderBy(activityEvents.id)
  ).map((e) => e.type);

describe('board groups', () => {
  it('creates, lists, reads, renames and deletes a group, with audit and activity rows', async () => {
    const created = await send('POST', '/api/v1/board-groups', { name: '  Platform  ', description: 'infra boards' });
    expect(created.status).toBe(201);
    const group = created.body;
    expect(group).toMatchObject({ name: 'Platform', description: 'infra boards', board_count: 0 });

    const list = await send('GET', '/api/v1/board-groups?limit=200');
    expect(list.body.items.map((g: { id: string }) => g.id)).toContain(group.id);
    expect(list.body).toMatchObject({ limit: 200, offset: 0 });
    expect((await send('GET', `/api/v1/board-groups/${group.id}`)).body).toEqual(group);

    const board = await send('POST', '/api/v1/boards', { name: 'grouped', group_id: group.id });
    expect(board.status).toBe(201);
    const renamed = await send('PATCH', `/api/v1/board-groups/${group.id}`, { name: 'Infra' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ name: 'Infra', description: 'infra boards', board_count: 1 });

    const deleted = await send('DELETE', `/api/v1/board-groups/${group.id}`);
    expect(deleted.status).toBe(204);
    expect((await send('GET', `/api/v1/board-groups/${group.id}`)).status).toBe(404);
    expect((await send('DELETE', `/api/v1/board-groups/${group.id}`)).status).toBe(404);
    // Its boards stay, detached.
    const detached = await send('GET', `/api/v1/boards/${board.body.id}`);
    expect(detached.body).toMatchObject({ name: 'grouped', group_id: null });

    const actions = (await db.select().from(auditLogs).where(eq(auditLogs.targetId, group.id))).map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['board_group.create', 'board_group.update', 'board_group.delete']));
    expect(await eventTypes(group.id)).toEqual(['board_group.created', 'board_group.updated', 'board_group.deleted']);
  });

  it('lets read keys read and write keys change; refuses read keys with 403', async () => {
    const writer = await createKey(['write']);
    const reader = await createKey(['read']);
    const byWriter = await send('POST', '/api/v1/board-groups', { name: 'automation' }, writer);
    expect(byWriter.status).toBe(201);
    expect((await send('GET', `/api/v1/board-groups/${byWriter.body.id}`, undefined, reader)).status).toBe(200);
    expect((await send('POST', '/api/v1/board-groups', { name: 'no' }, reader)).status).toBe(403);
    expect((await send('PATCH', `/api/v1/board-groups/${byWriter.body.id}`, { name: 'no' }, reader)).status).toBe(403);
    expect((await send('DELETE', `/api/v1/board-groups/${byWriter.body.id}`, undefined, reader)).status).toBe(403);
    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'board_group.create'), eq(auditLogs.targetId, byWriter.body.id)));
    expect(audit).toMatchObject({ actorType: 'api_key' });
  });

  it("answers 404 for another organization's group and never lists it", async () => {
    const group = (await send('POST', '/api/v1/board-groups', { name: 'private' })).body;
    const foreign = await foreignAdminKey();
    expect((await send('GET', `/api/v1/board-groups/${group.id}`, undefined, foreign)).status).toBe(404);
    expect((await send('PATCH', `/api/v1/board-groups/${group.id}`, { name: 'x' }, foreign)).status).toBe(404);
    expect((await send('DELETE', `/api/v1/board-groups/${group.id}`, undefined, foreign)).status).toBe(404);
    const list = await send('GET', '/api/v1/board-groups?limit=200', undefined, foreign);
    expect(JSON.stringify(list.body)).not.toContain(group.id);
    expect((await send('GET', `/api/v1/board-groups/${group.id}`)).body.name).toBe('private');
  });

  it('validates input with 422 naming the field', async () => {
    const empty = await send('POST', '/api/v1/board-groups', { name: '   ' });
    expect(empty.status).toBe(422);
    expect(empty.body.error.details.issues[0].path).toBe('name');
    const long = await send('POST', '/api/v1/board-groups', { name: 'x'.repeat(201), description: 'y'.repeat(2001) });
    expect(long.body.error.details.issues.map((i: { path: string }) => i.path).sort()).toEqual(['description', 'name']);
    expect((await send('GET', '/api/v1/board-groups/nope')).status).toBe(422);
    expect((await send('PATCH', `/api/v1/board-groups/${crypto.randomUUID()}`, { name: 'x' })).status).toBe(404);
    expect((await send('GET', '/api/v1/board-groups?limit=201')).status).toBe(422);
  });
});
