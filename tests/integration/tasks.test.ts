import { and, eq, sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs, memberBoardAccess, organizationMembers, users } from '../../workers/db/schema';
import { activityEvents, tasks } from '../../workers/db/schema-domain';
import { api, bearer, type Call, json, jwtOperators, operatorHeaders, testEnv } from './helpers';

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes and assert on them.
type Json = Record<string, any>;

/** Other operators, each with an organization of their own. */
const { clerk, newOperator } = jwtOperators('tasks');

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

const send = (call: Call, method: string, path: string, body: unknown, headers: Record<string, string>) =>
  call(path, { method, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
type Headers = Record<string, string>;
const post = (path: string, body: unknown, headers: Headers = operatorHeaders(), call: Call = api) =>
  send(call, 'POST', path, body, headers);
const patch = (path: string, body: unknown, headers: Headers = operatorHeaders(), call: Call = api) =>
  send(call, 'PATCH', path, body, headers);
const get = (path: string, headers: Headers = operatorHeaders(), call: Call = api) => call(path, { headers });

async function ok(res: Response | Promise<Response>, status = 200): Promise<Json> {
  const r = await res;
  const body = r.status === 204 ? {} : await json(r);
  expect(r.status, JSON.stringify(body)).toBe(status);
  return body;
}

async function error(res: Response | Promise<Response>, status: number): Promise<Json> {
  const r = await res;
  const body = await json(r);
  expect(r.status, JSON.stringify(body)).toBe(status);
  return body.error;
}

/** The issue paths of a 422. */
const paths = (err: Json) => (err.details.issues as { path: string }[]).map((i) => i.path);

const relaxed = { require_approval_for_done: false };
const newBoard = (settings: Json = relaxed, headers: Headers = operatorHeaders(), call: Call = api) =>
  ok(post('/api/v1/boards', { name: `tasks ${crypto.randomUUID().slice(0, 8)}`, ...settings }, headers, call), 201);
const newAgent = (boardId: string, isLead = false) =>
  ok(post('/api/v1/agents', { board_id: boardId, name: isLead ? 'lead' : 'worker', is_lead: isLead }), 201);
const newTask = (boardId: string, body: Json = {}, headers: Headers = operatorHeaders(), call: Call = api) =>
  ok(post(`/api/v1/boards/${boardId}/tasks`, { title: 'A task', ...body }, headers, call), 201);

async function activityOf(taskId: string) {
  return db.select().from(activityEvents).where(eq(activityEvents.taskId, taskId)).orderBy(activityEvents.id);
}

describe('tasks (operator routes)', () => {
  it('creates a task with every field, audits it, records activity and reads it back', async () => {
    const board = await newBoard();
    const agent = await newAgent(board.id);
    const dep = await newTask(board.id, { title: 'first' });
    const task = await newTask(board.id, {
      title: '  Write the launch post  ',
      description: 'Two paragraphs.',
      priority: 'high',
      due_at: '2030-01-02T03:04:05+02:00',
      assignee_agent_id: agent.id,
      tags: ['launch', ' blog ', 'launch'],
      depends_on_task_ids: [dep.id],
      unknown_field: 'ignored',
    });
    expect(task).toMatchObject({
      board_id: board.id,
      title: 'Write the launch post',
      description: 'Two paragraphs.',
      status: 'inbox',
      priority: 'high',
      due_at: '2030-01-02T01:04:05.000Z',
      assignee_agent_id: agent.id,
      tags: ['launch', 'blog'],
      custom_fields: {},
      depends_on_task_ids: [dep.id],
      blocked_by_task_ids: [dep.id],
      is_blocked: true,
      version: 1,
      done_at: null,
    });
    expect(task).not.toHaveProperty('unknown_field');
    expect(await ok(get(`/api/v1/boards/${board.id}/tasks/${task.id}`))).toEqual(task);

    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'task.create'), eq(auditLogs.targetId, task.id)));
    expect(audit).toMatchObject({ actorType: 'user', success: true });
    const events = await activityOf(task.id);
    expect(events.map((e) => e.type)).toEqual(['task.created']);
    expect(events[0]).toMatchObject({ boardId: board.id, actorType: 'user' });
  });

  it('changes a task against its version: new version back, stale version 409, each change in the feed', async () => {
    const board = await newBoard();
    const agent = await newAgent(board.id);
    const task = await newTask(board.id);
    const path = `/api/v1/boards/${board.id}/tasks/${task.id}`;

    const missing = await error(patch(path, { title: 'no version' }), 422);
    expect(paths(missing)).toContain('version');

    const renamed = await ok(patch(path, { title: 'Renamed', version: 1 }));
    expect(renamed).toMatchObject({ title: 'Renamed', version: 2 });
    const stale = await error(patch(path, { title: 'Again', version: 1 }), 409);
    expect(stale).toMatchObject({ code: 'version_conflict', details: { current_version: 2 } });

    const moved = await ok(patch(path, { status: 'in_progress', assignee_agent_id: agent.id, version: 2 }));
    expect(moved).toMatchObject({ status: 'in_progress', assignee_agent_id: agent.id, version: 3 });
    const done = await ok(patch(path, { status: 'done', version: 3 }));
    expect(done.done_at).not.toBeNull();
    const reopened = await ok(patch(path, { status: 'inbox', assignee_agent_id: null, version: 4 }));
    expect(reopened).toMatchObject({ done_at: null, assignee_agent_id: null, version: 5 });

    const types = (await activityOf(task.id)).map((e) => e.type);
    expect(types).toEqual([
      'task.created',
      'task.updated',
      'task.status_changed',
      'task.assigned',
      'task.status_changed',
      'task.status_changed',
      'task.assigned',
    ]);
    const assigned = (await activityOf(task.id)).find((e) => e.type === 'task.assigned');
    expect(assigned?.agentId).toBe(agent.id);
    const audits = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'task.update'), eq(auditLogs.targetId, task.id)));
    expect(audits).toHaveLength(4);
    const statusEvent = (await activityOf(task.id)).find((e) => e.type === 'task.status_changed');
    expect(statusEvent?.payload).toMatchObject({ from: 'inbox', to: 'in_progress', version: 3 });
    // The refused stale update is audited as a failed request.
    const failed = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'request.failed'), sql`${auditLogs.details}->>'path' = ${path}`));
    expect(failed.map((a) => (a.details as Json).code)).toContain('version_conflict');
    const nothing = await error(patch(path, { version: 5 }), 422);
    expect(nothing.message).toContain('changes nothing');
  });

  it('lets exactly one of several concurrent changes with the same version win', async () => {
    const board = await newBoard();
    const task = await newTask(board.id);
    const path = `/api/v1/boards/${board.id}/tasks/${task.id}`;
    const results = await Promise.all(
      ['in_progress', 'review', 'done', 'in_progress', 'review'].map((status, i) =>
        patch(path, { status, title: `writer ${i}`, version: 1 }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 409, 409, 409, 409]);
    for (const r of results.filter((r) => r.status === 409)) {
      expect((await json(r)).error.code).toBe('version_conflict');
    }
    const [row] = await db.select().from(tasks).where(eq(tasks.id, task.id));
    expect(row?.version).toBe(2);
    const winner = await json(results.find((r) => r.status === 200) as Response);
    expect(row?.title).toBe(winner.title);
  });

  it('filters by status list, assignee, unassigned and tag, oldest first, with pagination', async () => {
    const board = await newBoard();
    const agent = await newAgent(board.id);
    const a = await newTask(board.id, { title: 'a', tags: ['red'] });
    const b = await newTask(board.id, { title: 'b', status: 'in_progress', assignee_agent_id: agent.id });
    const c = await newTask(board.id, { title: 'c', status: 'review', tags: ['red', 'blue'] });
    const d = await newTask(board.id, { title: 'd', status: 'done' });
    const list = (query = '') => ok(get(`/api/v1/boards/${board.id}/tasks${query}`));
    const ids = (body: Json) => (body.items as Json[]).map((t) => t.id);

    const all = await list();
    expect(ids(all)).toEqual([a.id, b.id, c.id, d.id]);
    expect(all).toMatchObject({ total: 4, limit: 50, offset: 0 });
    expect(ids(await list('?status=inbox,review'))).toEqual([a.id, c.id]);
    expect(ids(await list(`?assignee=${agent.id}`))).toEqual([b.id]);
    expect(ids(await list('?unassigned=true'))).toEqual([a.id, c.id, d.id]);
    expect(ids(await list('?unassigned=false'))).toEqual([b.id]);
    expect(ids(await list('?tag=red'))).toEqual([a.id, c.id]);
    expect(ids(await list('?tag=red&status=review'))).toEqual([c.id]);
    const page = await list('?limit=2&offset=1');
    expect(ids(page)).toEqual([b.id, c.id]);
    expect(page).toMatchObject({ total: 4, limit: 2, offset: 1 });

    expect(paths(await error(get(`/api/v1/boards/${board.id}/tasks?status=inbox,bogus`), 422))).toEqual(['status']);
    expect(paths(await error(get(`/api/v1/boards/${board.id}/tasks?assignee=nope`), 422))).toEqual(['assignee']);
    expect(paths(await error(get(`/api/v1/boards/${board.id}/tasks?unassigned=yes`), 422))).toEqual(['unassigned']);
    expect(paths(await error(get(`/api/v1/boards/${board.id}/tasks?limit=-1`), 422))).toEqual(['limit']);
    await error(get(`/api/v1/boards/${crypto.randomUUID()}/tasks`), 404);
  });

  it('answers 422 naming the field for bad input', async () => {
    const board = await newBoard();
    const other = await newBoard();
    const foreignAgent = await newAgent(other.id);
    const foreignTask = await newTask(other.id);
    const create = (body: Json) => error(post(`/api/v1/boards/${board.id}/tasks`, { title: 'ok', ...body }), 422);

    expect(paths(await create({ title: '   ' }))).toEqual(['title']);
    expect(paths(await create({ title: 'x'.repeat(201) }))).toEqual(['title']);
    expect(paths(await create({ description: 'x'.repeat(20_001) }))).toEqual(['description']);
    expect(paths(await create({ status: 'blocked' }))).toEqual(['status']);
    expect(paths(await create({ priority: 'critical' }))).toEqual(['priority']);
    expect(paths(await create({ due_at: 'tomorrow' }))).toEqual(['due_at']);
    expect(paths(await create({ tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }))).toEqual(['tags']);
    expect(paths(await create({ tags: ['x'.repeat(51)] }))).toEqual(['tags.0']);
    expect(paths(await create({ assignee_agent_id: 'agent-7' }))).toEqual(['assignee_agent_id']);
    expect(paths(await create({ depends_on_task_ids: ['nope'] }))).toEqual(['depends_on_task_ids.0']);
    expect(paths(await create({ assignee_agent_id: foreignAgent.id }))).toEqual(['assignee_agent_id']);
    expect(paths(await create({ depends_on_task_ids: [foreignTask.id] }))).toEqual(['depends_on_task_ids']);
    expect(paths(await create({ custom_fields: 'text' }))).toEqual(['custom_fields']);
    expect(paths(await error(post(`/api/v1/boards/${board.id}/tasks`, {}), 422))).toEqual(['title']);

    const task = await newTask(board.id);
    const path = `/api/v1/boards/${board.id}/tasks/${task.id}`;
    expect(paths(await error(patch(path, { version: 'one' }), 422))).toEqual(['version']);
    expect(paths(await error(patch(path, { assignee_agent_id: foreignAgent.id, version: 1 }), 422))).toEqual([
      'assignee_agent_id',
    ]);
    expect(paths(await error(get(`/api/v1/boards/${board.id}/tasks/not-a-uuid`), 422))).toEqual(['task']);
  });

  it('deletes a task with an activity event, and comments on tasks oldest first', async () => {
    const board = await newBoard();
    const task = await newTask(board.id);
    const path = `/api/v1/boards/${board.id}/tasks/${task.id}`;
    const first = await ok(post(`${path}/comments`, { body: 'First look' }), 201);
    expect(first).toMatchObject({ task_id: task.id, board_id: board.id, author_type: 'user', body: 'First look' });
    const second = await ok(post(`${path}/comments`, { body: '  Second  ' }), 201);
    const comments = await ok(get(`${path}/comments`));
    expect((comments.items as Json[]).map((c) => c.id)).toEqual([first.id, second.id]);
    expect(comments.items[1].body).toBe('Second');
    expect(comments.total).toBe(2);
    expect(paths(await error(post(`${path}/comments`, { body: ' ' }), 422))).toEqual(['body']);
    expect(paths(await error(post(`${path}/comments`, { body: 'x'.repeat(10_001) }), 422))).toEqual(['body']);
    expect((await activityOf(task.id)).map((e) => e.type)).toEqual([
      'task.created',
      'task.comment_created',
      'task.comment_created',
    ]);

    await ok(api(path, { method: 'DELETE', headers: operatorHeaders() }), 204);
    await error(get(path), 404);
    await error(api(path, { method: 'DELETE', headers: operatorHeaders() }), 404);
    await error(get(`${path}/comments`), 404);
    const [deleted] = await db
      .select()
      .from(activityEvents)
      .where(and(eq(activityEvents.boardId, board.id), eq(activityEvents.type, 'task.deleted')));
    expect(deleted?.payload).toMatchObject({ task_id: task.id, title: 'A task' });
  });

  it('answers 404 for tasks of another board or organization, never 403', async () => {
    const board = await newBoard();
    const otherBoard = await newBoard();
    const task = await newTask(board.id);
    const wrongBoard = `/api/v1/boards/${otherBoard.id}/tasks/${task.id}`;
    await error(get(wrongBoard), 404);
    await error(patch(wrongBoard, { title: 'x', version: 1 }), 404);
    await error(api(wrongBoard, { method: 'DELETE', headers: operatorHeaders() }), 404);
    await error(post(`${wrongBoard}/comments`, { body: 'hi' }), 404);

    const stranger = await newOperator();
    const foreignBoard = await newBoard(relaxed, stranger.headers, clerk);
    const foreignTask = await newTask(foreignBoard.id, {}, stranger.headers, clerk);
    const foreignPath = `/api/v1/boards/${foreignBoard.id}/tasks/${foreignTask.id}`;
    await error(get(`/api/v1/boards/${foreignBoard.id}/tasks`), 404);
    await error(post(`/api/v1/boards/${foreignBoard.id}/tasks`, { title: 'intruder' }), 404);
    await error(get(foreignPath), 404);
    await error(patch(foreignPath, { title: 'x', version: 1 }), 404);
    await error(get(`${foreignPath}/comments`), 404);
    await error(post(`${foreignPath}/comments`, { body: 'hi' }), 404);
    // And the other way round.
    await error(get(`/api/v1/boards/${board.id}/tasks/${task.id}`, stranger.headers, clerk), 404);
    const [row] = await db.select().from(tasks).where(eq(tasks.id, foreignTask.id));
    expect(row?.title).toBe('A task');
  });

  it('lets a read-only member read but not change (403), and hides boards they cannot read (404)', async () => {
    const owner = await newOperator();
    const open = await newBoard(relaxed, owner.headers, clerk);
    const closed = await newBoard(relaxed, owner.headers, clerk);
    const task = await newTask(open.id, {}, owner.headers, clerk);
    const member = await newOperator();
    const [membership] = await db
      .insert(organizationMembers)
      .values({ organizationId: owner.organizationId, userId: member.userId, role: 'member' })
      .returning();
    if (!membership) throw new Error('membership insert failed');
    await db.update(users).set({ activeOrganizationId: owner.organizationId }).where(eq(users.id, member.userId));
    await db.insert(memberBoardAccess).values({ memberId: membership.id, boardId: open.id, canRead: true });
    const h = member.headers;
    const path = `/api/v1/boards/${open.id}/tasks/${task.id}`;

    expect((await ok(get(`/api/v1/boards/${open.id}/tasks`, h, clerk))).total).toBe(1);
    await ok(get(path, h, clerk));
    expect((await error(post(`/api/v1/boards/${open.id}/tasks`, { title: 'x' }, h, clerk), 403)).code).toBe(
      'forbidden',
    );
    await error(patch(path, { title: 'x', version: 1 }, h, clerk), 403);
    await error(post(`${path}/comments`, { body: 'hi' }, h, clerk), 403);
    await error(clerk(path, { method: 'DELETE', headers: h }), 403);
    await error(get(`/api/v1/boards/${closed.id}/tasks`, h, clerk), 404);

    await db.update(memberBoardAccess).set({ canWrite: true }).where(eq(memberBoardAccess.memberId, membership.id));
    await ok(patch(path, { title: 'Member edit', version: 1 }, h, clerk));
    await ok(post(`${path}/comments`, { body: 'hi' }, h, clerk), 201);
  });

  it('lets API keys read with `read` and change with `write`', async () => {
    const board = await newBoard();
    const key = async (scopes: string[]) =>
      (await ok(post('/api/v1/api-keys', { name: 'tasks key', scopes }), 201)).secret as string;
    const reader = bearer(await key(['read']));
    const writer = bearer(await key(['write']));
    const task = await newTask(board.id, {}, writer);
    expect(task.created_by_user_id).toBeNull();
    await ok(get(`/api/v1/boards/${board.id}/tasks/${task.id}`, reader));
    await error(post(`/api/v1/boards/${board.id}/tasks`, { title: 'no' }, reader), 403);
    const comment = await ok(post(`/api/v1/boards/${board.id}/tasks/${task.id}/comments`, { body: 'k' }, writer), 201);
    expect(comment.author_type).toBe('api_key');
  });
});

describe('custom fields', () => {
  /** An organization of its own, so required fields bother no other test. */
  async function org() {
    const owner = await newOperator();
    const call = (method: string, path: string, body?: unknown) =>
      body === undefined
        ? clerk(path, { method, headers: owner.headers })
        : send(clerk, method, path, body, owner.headers);
    const define = async (key: string, field_type: string, required = false) =>
      ok(call('POST', '/api/v1/custom-fields', { key, field_type, required }), 201);
    const board = await newBoard(relaxed, owner.headers, clerk);
    return { owner, call, define, board };
  }

  it('defines fields (admin only), lists them in order and refuses duplicates and bad keys', async () => {
    const { owner, call, define } = await org();
    const estimate = await define('estimate', 'integer', true);
    expect(estimate).toMatchObject({ key: 'estimate', label: 'estimate', field_type: 'integer', required: true });
    const link = await ok(
      call('POST', '/api/v1/custom-fields', { key: 'link', label: 'Link', field_type: 'url' }),
      201,
    );
    expect(link).toMatchObject({ label: 'Link', required: false });
    const list = await ok(call('GET', '/api/v1/custom-fields'));
    expect((list.items as Json[]).map((f) => f.key)).toEqual(['estimate', 'link']);
    expect(list.total).toBe(2);

    expect((await error(call('POST', '/api/v1/custom-fields', { key: 'link', field_type: 'text' }), 409)).code).toBe(
      'custom_field_exists',
    );
    for (const key of ['Link', '9lives', 'with-dash', '', 'a'.repeat(64)]) {
      expect(paths(await error(call('POST', '/api/v1/custom-fields', { key, field_type: 'text' }), 422))).toEqual([
        'key',
      ]);
    }
    expect(paths(await error(call('POST', '/api/v1/custom-fields', { key: 'k', field_type: 'money' }), 422))).toEqual([
      'field_type',
    ]);
    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'custom_field.create'), eq(auditLogs.targetId, link.id)));
    expect(audit?.organizationId).toBe(owner.organizationId);

    // Another organization sees none of them and cannot delete them.
    const outsider = await ok(get('/api/v1/custom-fields?limit=200'));
    expect(JSON.stringify(outsider)).not.toContain(link.id);
    await error(api(`/api/v1/custom-fields/${link.id}`, { method: 'DELETE', headers: operatorHeaders() }), 404);
    // Members and read or write keys cannot define fields.
    const member = await newOperator();
    const [membership] = await db
      .insert(organizationMembers)
      .values({ organizationId: owner.organizationId, userId: member.userId, role: 'member' })
      .returning();
    if (!membership) throw new Error('membership insert failed');
    await db.update(users).set({ activeOrganizationId: owner.organizationId }).where(eq(users.id, member.userId));
    await ok(get('/api/v1/custom-fields', member.headers, clerk));
    await error(post('/api/v1/custom-fields', { key: 'nope', field_type: 'text' }, member.headers, clerk), 403);
    const writeKey = await ok(call('POST', '/api/v1/api-keys', { name: 'w', scopes: ['write'] }), 201);
    await error(post('/api/v1/custom-fields', { key: 'nope', field_type: 'text' }, bearer(writeKey.secret)), 403);
    const adminKey = await ok(call('POST', '/api/v1/api-keys', { name: 'a', scopes: ['admin'] }), 201);
    await ok(post('/api/v1/custom-fields', { key: 'by_key', field_type: 'text' }, bearer(adminKey.secret)), 201);
  });

  it('validates task values by type, naming custom_fields.<key>', async () => {
    const { call, define, board } = await org();
    const types: [string, unknown, unknown][] = [
      ['text', 'hello', 42],
      ['integer', 3, 3.5],
      ['decimal', 3.25, '3.25'],
      ['boolean', true, 'yes'],
      ['date', '2030-02-28', '2030-02-30'],
      ['date_time', '2030-02-28T10:00:00Z', '2030-02-28 10:00'],
      ['url', 'https://example.com/x', 'javascript:alert(1)'],
      ['json', { nested: [1, 2] }, undefined],
    ];
    for (const [type] of types) await define(`f_${type}`, type);
    const good = Object.fromEntries(types.map(([type, value]) => [`f_${type}`, value]));
    const task = await ok(call('POST', `/api/v1/boards/${board.id}/tasks`, { title: 't', custom_fields: good }), 201);
    expect(task.custom_fields).toEqual(good);

    for (const [type, , bad] of types) {
      if (bad === undefined) continue;
      const body = { title: 't', custom_fields: { [`f_${type}`]: bad } };
      const err = await error(call('POST', `/api/v1/boards/${board.id}/tasks`, body), 422);
      expect(paths(err)).toEqual([`custom_fields.f_${type}`]);
    }
    const unknown = await error(
      call('POST', `/api/v1/boards/${board.id}/tasks`, { title: 't', custom_fields: { nope: 1 } }),
      422,
    );
    expect(paths(unknown)).toEqual(['custom_fields.nope']);

    // PATCH merges: given keys change, null clears, the rest stays.
    const path = `/api/v1/boards/${board.id}/tasks/${task.id}`;
    const merged = await ok(call('PATCH', path, { custom_fields: { f_integer: 7, f_text: null }, version: 1 }));
    expect(merged.custom_fields).toEqual({ ...good, f_integer: 7, f_text: undefined });
    expect(merged.custom_fields).not.toHaveProperty('f_text');
    const wrong = await error(call('PATCH', path, { custom_fields: { f_boolean: 1 }, version: 2 }), 422);
    expect(paths(wrong)).toEqual(['custom_fields.f_boolean']);
  });

  it('requires required fields on new tasks, refuses clearing them, and strips a deleted field', async () => {
    const { call, define, board } = await org();
    const size = await define('size', 'integer', true);
    const missing = await error(call('POST', `/api/v1/boards/${board.id}/tasks`, { title: 't' }), 422);
    expect(paths(missing)).toEqual(['custom_fields.size']);
    const nulled = await error(
      call('POST', `/api/v1/boards/${board.id}/tasks`, { title: 't', custom_fields: { size: null } }),
      422,
    );
    expect(paths(nulled)).toEqual(['custom_fields.size']);
    const task = await ok(
      call('POST', `/api/v1/boards/${board.id}/tasks`, { title: 't', custom_fields: { size: 3 } }),
      201,
    );
    const path = `/api/v1/boards/${board.id}/tasks/${task.id}`;
    const cleared = await error(call('PATCH', path, { custom_fields: { size: null }, version: 1 }), 422);
    expect(paths(cleared)).toEqual(['custom_fields.size']);
    // Other changes do not need the required fields again.
    await ok(call('PATCH', path, { title: 'renamed', version: 1 }));

    await ok(call('DELETE', `/api/v1/custom-fields/${size.id}`), 204);
    const after = await ok(call('GET', path));
    expect(after.custom_fields).toEqual({});
    expect(after.version).toBe(3);
    await ok(call('POST', `/api/v1/boards/${board.id}/tasks`, { title: 'free again' }), 201);
    await error(call('DELETE', `/api/v1/custom-fields/${size.id}`), 404);
  });
});
