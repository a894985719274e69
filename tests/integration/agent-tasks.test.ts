import { and, eq } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs, boards, organizations } from '../../workers/db/schema';
import { activityEvents, tasks } from '../../workers/db/schema-domain';
import { api, json, operatorHeaders, testEnv } from './helpers';

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes and assert on them.
type Json = Record<string, any>;

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

const send = (method: string, path: string, body: unknown, headers: Record<string, string>) =>
  api(path, { method, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

async function ok(res: Response | Promise<Response>, status = 200): Promise<Json> {
  const r = await res;
  const body = await json(r);
  expect(r.status, JSON.stringify(body)).toBe(status);
  return body;
}
async function refused(res: Response | Promise<Response>, status: number, code?: string): Promise<Json> {
  const r = await res;
  const body = await json(r);
  expect(r.status, JSON.stringify(body)).toBe(status);
  if (code) expect(body.error.code).toBe(code);
  return body.error;
}

/** An agent's view of the API, with its own token and client address. */
function agentClient(token: string) {
  const headers = { 'X-Agent-Token': token, 'CF-Connecting-IP': `198.51.100.${Math.floor(Math.random() * 250)}` };
  return {
    get: (path: string) => api(`/api/v1/agent${path}`, { headers }),
    post: (path: string, body: unknown) => send('POST', `/api/v1/agent${path}`, body, headers),
    patch: (path: string, body: unknown) => send('PATCH', `/api/v1/agent${path}`, body, headers),
  };
}

/** A board (approval and review rules off unless given) with a lead and two workers. */
async function team(rules: Json = {}) {
  const board = await ok(
    send('POST', '/api/v1/boards', { name: 'agents', require_approval_for_done: false, ...rules }, operatorHeaders()),
    201,
  );
  const agent = async (name: string, isLead = false) => {
    const a = await ok(
      send('POST', '/api/v1/agents', { board_id: board.id, name, is_lead: isLead }, operatorHeaders()),
      201,
    );
    return { id: a.id as string, ...agentClient(a.token) };
  };
  const lead = await agent('lead', true);
  const worker = await agent('worker');
  const other = await agent('other worker');
  const operatorTask = (body: Json = {}) =>
    ok(send('POST', `/api/v1/boards/${board.id}/tasks`, { title: 'op task', ...body }, operatorHeaders()), 201);
  return { board, lead, worker, other, operatorTask };
}

describe('agent API: tasks', () => {
  it('lists and reads only tasks of the agent’s own board; other boards and organizations are 404', async () => {
    const mine = await team();
    const theirs = await team();
    const a = await mine.operatorTask({ title: 'a', tags: ['x'] });
    const b = await mine.operatorTask({ title: 'b', status: 'review' });
    const foreign = await theirs.operatorTask();

    const list = await ok(mine.worker.get('/tasks'));
    expect((list.items as Json[]).map((t) => t.id)).toEqual([a.id, b.id]);
    expect(list.total).toBe(2);
    expect((await ok(mine.worker.get('/tasks?status=review'))).items.map((t: Json) => t.id)).toEqual([b.id]);
    expect((await ok(mine.worker.get('/tasks?tag=x'))).items.map((t: Json) => t.id)).toEqual([a.id]);
    expect((await ok(mine.worker.get('/tasks?unassigned=true'))).total).toBe(2);
    expect((await refused(mine.worker.get('/tasks?status=nope'), 422)).details.issues[0].path).toBe('status');
    expect(await ok(mine.worker.get(`/tasks/${a.id}`))).toMatchObject({ id: a.id, title: 'a' });

    await refused(mine.worker.get(`/tasks/${foreign.id}`), 404);
    await refused(mine.lead.patch(`/tasks/${foreign.id}`, { status: 'in_progress' }), 404);
    await refused(mine.worker.get(`/tasks/${foreign.id}/comments`), 404);
    await refused(mine.worker.post(`/tasks/${foreign.id}/comments`, { body: 'hi' }), 404);
    await refused(mine.worker.get(`/tasks/${crypto.randomUUID()}`), 404);
    // A task of another organization, stored directly.
    const [org] = await db.insert(organizations).values({ name: 'elsewhere' }).returning();
    const [board] = await db
      .insert(boards)
      .values({ organizationId: org?.id as string, name: 'b' })
      .returning();
    const [alien] = await db
      .insert(tasks)
      .values({ organizationId: org?.id as string, boardId: board?.id as string, title: 'alien' })
      .returning();
    await refused(mine.lead.get(`/tasks/${alien?.id}`), 404);
    await refused(mine.lead.patch(`/tasks/${alien?.id}`, { status: 'inbox', assignee_agent_id: null }), 404);
    await refused(mine.lead.post(`/tasks/${alien?.id}/comments`, { body: 'hi' }), 404);
    await refused(mine.worker.get('/tasks/not-a-uuid'), 422);
    // An agent token is no operator credential, and operators do not use the agent API.
    await refused(api(`/api/v1/boards/${mine.board.id}/tasks`, { headers: { Authorization: 'Bearer mca_x' } }), 401);
    await refused(api('/api/v1/agent/tasks', { headers: operatorHeaders() }), 401);
  });

  it('lets only the lead create tasks', async () => {
    const t = await team();
    const created = await ok(t.lead.post('/tasks', { title: 'From the lead', assignee_agent_id: t.worker.id }), 201);
    expect(created).toMatchObject({
      board_id: t.board.id,
      created_by_agent_id: t.lead.id,
      created_by_user_id: null,
      assignee_agent_id: t.worker.id,
      status: 'inbox',
    });
    await refused(t.worker.post('/tasks', { title: 'From a worker' }), 403, 'lead_only');
    expect((await refused(t.lead.post('/tasks', { title: '' }), 422)).details.issues[0].path).toBe('title');
    const [event] = await db.select().from(activityEvents).where(eq(activityEvents.taskId, created.id));
    expect(event).toMatchObject({ type: 'task.created', agentId: t.lead.id, actorType: 'agent', actorId: t.lead.id });
  });

  it('walks a task through a worker and the lead: self-assign, hand to the lead, review', async () => {
    const t = await team();
    const task = await t.operatorTask();
    const path = `/tasks/${task.id}`;

    const started = await ok(t.worker.patch(path, { status: 'in_progress' }));
    expect(started).toMatchObject({ status: 'in_progress', assignee_agent_id: t.worker.id, version: 2 });
    // Now it is the worker's: the other worker may neither move it nor comment on it.
    await refused(t.other.patch(path, { status: 'review' }), 403, 'not_your_task');
    await refused(t.other.post(`${path}/comments`, { body: 'mine?' }), 403, 'not_your_task');
    await ok(t.worker.post(`${path}/comments`, { body: 'Done, see the PR.' }), 201);
    const fields = await ok(t.worker.patch(path, { custom_fields: {} }));
    expect(fields.version).toBe(3);

    const handed = await ok(t.worker.patch(path, { status: 'review' }));
    expect(handed).toMatchObject({ status: 'review', assignee_agent_id: t.lead.id });
    // The worker no longer holds it.
    await refused(t.worker.patch(path, { status: 'done' }), 403, 'not_your_task');

    const done = await ok(t.lead.patch(path, { status: 'done' }));
    expect(done).toMatchObject({ status: 'done', assignee_agent_id: t.lead.id });

    const events = await db
      .select()
      .from(activityEvents)
      .where(eq(activityEvents.taskId, task.id))
      .orderBy(activityEvents.id);
    expect(events.map((e) => [e.type, e.agentId])).toEqual([
      ['task.created', null],
      ['task.status_changed', t.worker.id],
      ['task.assigned', t.worker.id],
      ['task.comment_created', t.worker.id],
      ['task.updated', t.worker.id],
      ['task.status_changed', t.worker.id],
      ['task.assigned', t.lead.id],
      ['task.status_changed', t.lead.id],
    ]);
    const audits = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.targetId, task.id), eq(auditLogs.action, 'task.update')));
    expect(audits.every((a) => a.actorType === 'agent')).toBe(true);
  });

  it('keeps workers to status and custom fields on unassigned or own tasks, and to their transitions', async () => {
    const t = await team();
    const task = await t.operatorTask();
    const path = `/tasks/${task.id}`;
    const forbidden = await refused(
      t.worker.patch(path, { title: 'mine now', priority: 'urgent' }),
      403,
      'field_not_allowed',
    );
    expect(forbidden.details.fields).toEqual(['title', 'priority']);
    await refused(t.worker.patch(path, { assignee_agent_id: t.worker.id }), 403, 'field_not_allowed');
    await refused(t.worker.patch(path, { status: 'review' }), 403, 'transition_not_allowed');
    await refused(t.worker.patch(path, { status: 'done' }), 403, 'transition_not_allowed');
    // Unassigned tasks take comments from any worker.
    await ok(t.other.post(`${path}/comments`, { body: 'I can take it' }), 201);

    const assigned = await t.operatorTask({ assignee_agent_id: t.other.id });
    await refused(t.worker.patch(`/tasks/${assigned.id}`, { status: 'in_progress' }), 403, 'not_your_task');
    await refused(t.worker.patch(`/tasks/${assigned.id}`, { custom_fields: {} }), 403, 'not_your_task');

    await ok(t.worker.patch(path, { status: 'in_progress' }));
    const released = await ok(t.worker.patch(path, { status: 'inbox' }));
    expect(released).toMatchObject({ status: 'inbox', assignee_agent_id: null });
  });

  it('lets the lead review (review -> done | inbox), assign, and start while assigning, but not do the work', async () => {
    const t = await team();
    const task = await t.operatorTask();
    const path = `/tasks/${task.id}`;
    await refused(t.lead.patch(path, { status: 'review' }), 403, 'transition_not_allowed');
    await refused(t.lead.patch(path, { status: 'in_progress' }), 403, 'transition_not_allowed');
    const assigned = await ok(t.lead.patch(path, { assignee_agent_id: t.other.id }));
    expect(assigned).toMatchObject({ status: 'inbox', assignee_agent_id: t.other.id });
    const started = await ok(t.lead.patch(path, { status: 'in_progress', assignee_agent_id: t.worker.id }));
    expect(started).toMatchObject({ status: 'in_progress', assignee_agent_id: t.worker.id });
    await refused(t.lead.patch(path, { status: 'done' }), 403, 'transition_not_allowed');
    await ok(t.worker.patch(path, { status: 'review' }));
    const back = await ok(t.lead.patch(path, { status: 'inbox' }));
    expect(back).toMatchObject({ status: 'inbox', assignee_agent_id: null });

    const other = await team();
    const bad = await refused(t.lead.patch(path, { assignee_agent_id: other.worker.id }), 422);
    expect(bad.details.issues[0].path).toBe('assignee_agent_id');
  });

  it('applies the board rules to agents too, and checks a given version', async () => {
    const t = await team({ require_approval_for_done: true, comment_required_for_review: true });
    const task = await t.operatorTask();
    const path = `/tasks/${task.id}`;
    await ok(t.worker.patch(path, { status: 'in_progress' }));
    await refused(t.worker.patch(path, { status: 'review' }), 409, 'comment_required');
    await ok(t.worker.post(`${path}/comments`, { body: 'ready' }), 201);
    await ok(t.worker.patch(path, { status: 'review' }));
    await refused(t.lead.patch(path, { status: 'done' }), 409, 'approval_required');

    const stale = await refused(t.lead.patch(path, { status: 'inbox', version: 1 }), 409, 'version_conflict');
    expect(stale.details.current_version).toBe(3);
    const comments = await ok(t.lead.get(`${path}/comments`));
    expect(comments.items.map((c: Json) => [c.author_type, c.author_id, c.body])).toEqual([
      ['agent', t.worker.id, 'ready'],
    ]);
  });

  it('lets exactly one of two workers racing for the same task take it', async () => {
    const t = await team();
    const task = await t.operatorTask();
    const results = await Promise.all(
      [t.worker, t.other].map((w) => w.patch(`/tasks/${task.id}`, { status: 'in_progress' })),
    );
    const winners = results.filter((r) => r.status === 200);
    expect(winners).toHaveLength(1);
    const loser = results.find((r) => r.status !== 200) as Response;
    // Refused against the fresh state (now someone else's task) or as a stale write.
    expect([403, 409]).toContain(loser.status);
    const winner = await json(winners[0] as Response);
    const [row] = await db.select().from(tasks).where(eq(tasks.id, task.id));
    expect(row).toMatchObject({ assigneeAgentId: winner.assignee_agent_id, version: 2, status: 'in_progress' });
  });
});
