import { eq } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { approvals, approvalTasks, tasks } from '../../workers/db/schema-domain';
import { api, json, operatorHeaders, testEnv } from './helpers';

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes and assert on them.
type Json = Record<string, any>;

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

const send = (method: string, path: string, body: unknown, headers: Record<string, string> = operatorHeaders()) =>
  api(path, { method, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

async function ok(res: Response | Promise<Response>, status = 200): Promise<Json> {
  const r = await res;
  const body = await json(r);
  expect(r.status, JSON.stringify(body)).toBe(status);
  return body;
}
async function refused(res: Response | Promise<Response>, status: number, code: string): Promise<Json> {
  const r = await res;
  const body = await json(r);
  expect(r.status, JSON.stringify(body)).toBe(status);
  expect(body.error.code).toBe(code);
  return body.error;
}

const RULES_OFF = {
  require_approval_for_done: false,
  require_review_before_done: false,
  comment_required_for_review: false,
  block_status_changes_with_pending_approval: false,
  only_lead_can_change_status: false,
};

/** A board with every rule off but those given, and a helper to move its tasks. */
async function board(rules: Partial<typeof RULES_OFF> = {}) {
  const b = await ok(send('POST', '/api/v1/boards', { name: 'workflow', ...RULES_OFF, ...rules }), 201);
  const base = `/api/v1/boards/${b.id}/tasks`;
  const create = (body: Json = {}) => ok(send('POST', base, { title: 'task', ...body }), 201);
  const current = async (id: string) => ok(api(`${base}/${id}`, { headers: operatorHeaders() }));
  /** PATCH with the task's current version. */
  const move = async (id: string, body: Json) =>
    send('PATCH', `${base}/${id}`, { ...body, version: (await current(id)).version });
  const comment = (id: string) => ok(send('POST', `${base}/${id}/comments`, { body: 'looks good' }), 201);
  return { id: b.id as string, organizationId: b.organization_id as string, create, move, current, comment };
}

/** An approval fixture covering `taskIds`, as the approvals routes would store it. */
async function approval(b: { id: string; organizationId: string }, taskIds: string[], status: 'pending' | 'approved') {
  const [row] = await db
    .insert(approvals)
    .values({
      organizationId: b.organizationId,
      boardId: b.id,
      actionType: 'task.complete',
      payload: { reason: 'fixture' },
      confidence: 90,
      status,
      requestedByType: 'user',
      resolvedAt: status === 'approved' ? new Date() : null,
    })
    .returning();
  if (!row) throw new Error('approval fixture failed');
  await db
    .insert(approvalTasks)
    .values(taskIds.map((taskId) => ({ approvalId: row.id, taskId, pending: status === 'pending' })));
  return row.id;
}

describe('board rule: require_approval_for_done', () => {
  it('on: done needs an approved approval covering the task (a pending one is not enough)', async () => {
    const b = await board({ require_approval_for_done: true });
    const task = await b.create();
    await refused(b.move(task.id, { status: 'done' }), 409, 'approval_required');
    await refused(
      send('POST', `/api/v1/boards/${b.id}/tasks`, { title: 'born done', status: 'done' }),
      409,
      'approval_required',
    );
    const pending = await approval(b, [task.id], 'pending');
    await refused(b.move(task.id, { status: 'done' }), 409, 'approval_required');
    await db.update(approvals).set({ status: 'approved' }).where(eq(approvals.id, pending));
    await db.update(approvalTasks).set({ pending: false }).where(eq(approvalTasks.approvalId, pending));
    expect(await ok(b.move(task.id, { status: 'done' }))).toMatchObject({ status: 'done' });

    // An approval of another task covers nothing here.
    const other = await b.create();
    await approval(b, [task.id], 'approved');
    await refused(b.move(other.id, { status: 'done' }), 409, 'approval_required');
  });

  it('is on by default, and off lets tasks be done directly', async () => {
    const defaults = await ok(send('POST', '/api/v1/boards', { name: 'defaults' }), 201);
    const task = await ok(send('POST', `/api/v1/boards/${defaults.id}/tasks`, { title: 't' }), 201);
    await refused(
      send('PATCH', `/api/v1/boards/${defaults.id}/tasks/${task.id}`, { status: 'done', version: 1 }),
      409,
      'approval_required',
    );
    const b = await board();
    const free = await b.create();
    expect(await ok(b.move(free.id, { status: 'done' }))).toMatchObject({ status: 'done' });
    expect(await b.create({ status: 'done' })).toMatchObject({ status: 'done' });
  });
});

describe('board rule: require_review_before_done', () => {
  it('on: done only from review', async () => {
    const b = await board({ require_review_before_done: true });
    const task = await b.create();
    await refused(b.move(task.id, { status: 'done' }), 409, 'review_required');
    await ok(b.move(task.id, { status: 'in_progress' }));
    await refused(b.move(task.id, { status: 'done' }), 409, 'review_required');
    await ok(b.move(task.id, { status: 'review' }));
    expect(await ok(b.move(task.id, { status: 'done' }))).toMatchObject({ status: 'done' });
  });

  it('off: done from any status', async () => {
    const b = await board();
    const task = await b.create({ status: 'in_progress' });
    await ok(b.move(task.id, { status: 'done' }));
  });
});

describe('board rule: comment_required_for_review', () => {
  it('on: review needs a comment on the task', async () => {
    const b = await board({ comment_required_for_review: true });
    const task = await b.create();
    await refused(b.move(task.id, { status: 'review' }), 409, 'comment_required');
    const other = await b.create();
    await b.comment(other.id);
    await refused(b.move(task.id, { status: 'review' }), 409, 'comment_required');
    await b.comment(task.id);
    expect(await ok(b.move(task.id, { status: 'review' }))).toMatchObject({ status: 'review' });
  });

  it('off: review without a comment', async () => {
    const b = await board();
    await ok(b.move((await b.create()).id, { status: 'review' }));
  });
});

describe('board rule: block_status_changes_with_pending_approval', () => {
  it('on: no status change while an approval covering the task is pending; other edits still work', async () => {
    const b = await board({ block_status_changes_with_pending_approval: true });
    const task = await b.create();
    const pending = await approval(b, [task.id], 'pending');
    await refused(b.move(task.id, { status: 'in_progress' }), 409, 'pending_approval');
    await ok(b.move(task.id, { title: 'still editable' }));
    await db.update(approvals).set({ status: 'rejected' }).where(eq(approvals.id, pending));
    await db.update(approvalTasks).set({ pending: false }).where(eq(approvalTasks.approvalId, pending));
    await ok(b.move(task.id, { status: 'in_progress' }));
  });

  it('off: status changes with a pending approval', async () => {
    const b = await board();
    const task = await b.create();
    await approval(b, [task.id], 'pending');
    await ok(b.move(task.id, { status: 'in_progress' }));
  });
});

describe('board rule: only_lead_can_change_status', () => {
  async function agents(boardId: string) {
    const make = async (isLead: boolean) =>
      ok(send('POST', '/api/v1/agents', { board_id: boardId, name: isLead ? 'lead' : 'worker', is_lead: isLead }), 201);
    const lead = await make(true);
    const worker = await make(false);
    const as = (agent: Json) => (id: string, body: Json) =>
      send('PATCH', `/api/v1/agent/tasks/${id}`, body, { 'X-Agent-Token': agent.token });
    return { lead, worker, asLead: as(lead), asWorker: as(worker) };
  }

  it('on: workers get 403 on status changes; the lead and operators still move tasks', async () => {
    const b = await board({ only_lead_can_change_status: true });
    const { lead, worker, asLead, asWorker } = await agents(b.id);
    const task = await b.create();
    await refused(asWorker(task.id, { status: 'in_progress' }), 403, 'only_lead_can_change_status');
    // Workers may still set custom fields... and the lead assigns and starts the task.
    const started = await ok(asLead(task.id, { status: 'in_progress', assignee_agent_id: worker.id }));
    expect(started).toMatchObject({ status: 'in_progress', assignee_agent_id: worker.id });
    await refused(asWorker(task.id, { status: 'review' }), 403, 'only_lead_can_change_status');
    await ok(b.move(task.id, { status: 'review', assignee_agent_id: lead.id }));
    expect(await ok(asLead(task.id, { status: 'done' }))).toMatchObject({ status: 'done' });
  });

  it('off: workers move their tasks', async () => {
    const b = await board();
    const { worker, asWorker } = await agents(b.id);
    const task = await b.create();
    const mine = await ok(asWorker(task.id, { status: 'in_progress' }));
    expect(mine.assignee_agent_id).toBe(worker.id);
  });
});

describe('dependencies', () => {
  it('keep a task in inbox until every dependency is done, naming the blockers', async () => {
    const b = await board();
    const first = await b.create({ title: 'first' });
    const second = await b.create({ title: 'second' });
    const task = await b.create({ depends_on_task_ids: [first.id, second.id] });
    expect(task).toMatchObject({ is_blocked: true });
    expect(task.blocked_by_task_ids).toEqual([first.id, second.id].sort());

    for (const status of ['in_progress', 'review', 'done']) {
      const err = await refused(b.move(task.id, { status }), 409, 'task_blocked_cannot_transition');
      expect(err.details.blocked_by_task_ids).toEqual([first.id, second.id].sort());
    }
    const blockedAtBirth = { title: 'eager', status: 'in_progress', depends_on_task_ids: [first.id] };
    await refused(send('POST', `/api/v1/boards/${b.id}/tasks`, blockedAtBirth), 409, 'task_blocked_cannot_transition');

    await ok(b.move(first.id, { status: 'done' }));
    const err = await refused(b.move(task.id, { status: 'in_progress' }), 409, 'task_blocked_cannot_transition');
    expect(err.details.blocked_by_task_ids).toEqual([second.id]);
    // Other edits are fine while blocked.
    await ok(b.move(task.id, { title: 'renamed while blocked' }));

    await ok(b.move(second.id, { status: 'done' }));
    expect(await b.current(task.id)).toMatchObject({ is_blocked: false, blocked_by_task_ids: [] });
    expect(await ok(b.move(task.id, { status: 'in_progress' }))).toMatchObject({ status: 'in_progress' });
  });

  it('are replaced by PATCH, checked in the same request as a status change', async () => {
    const b = await board();
    const open = await b.create({ title: 'open' });
    const done = await b.create({ title: 'done', status: 'done' });
    const task = await b.create({ depends_on_task_ids: [open.id] });
    const unblocked = await ok(b.move(task.id, { depends_on_task_ids: [done.id], status: 'in_progress' }));
    expect(unblocked).toMatchObject({ status: 'in_progress', depends_on_task_ids: [done.id], is_blocked: false });
    await refused(
      b.move(task.id, { depends_on_task_ids: [open.id], status: 'review' }),
      409,
      'task_blocked_cannot_transition',
    );
    const cleared = await ok(b.move(task.id, { depends_on_task_ids: [] }));
    expect(cleared.depends_on_task_ids).toEqual([]);
  });

  it('refuse cycles with 422 dependency_cycle (self, direct, indirect) and other boards with 422', async () => {
    const b = await board();
    const a = await b.create({ title: 'a' });
    const bb = await b.create({ title: 'b', depends_on_task_ids: [a.id] });
    const c = await b.create({ title: 'c', depends_on_task_ids: [bb.id] });
    const self = await refused(b.move(a.id, { depends_on_task_ids: [a.id] }), 422, 'dependency_cycle');
    expect(self.details.issues[0].path).toBe('depends_on_task_ids');
    await refused(b.move(a.id, { depends_on_task_ids: [bb.id] }), 422, 'dependency_cycle');
    await refused(b.move(a.id, { depends_on_task_ids: [c.id] }), 422, 'dependency_cycle');
    const [row] = await db.select().from(tasks).where(eq(tasks.id, a.id));
    expect(row?.version).toBe(1);
    // Not a cycle: a diamond.
    await ok(b.move(c.id, { depends_on_task_ids: [bb.id, a.id] }));

    const elsewhere = await board();
    const foreign = await elsewhere.create();
    const err = await refused(b.move(a.id, { depends_on_task_ids: [foreign.id] }), 422, 'validation_failed');
    expect(err.details.issues[0].path).toBe('depends_on_task_ids');
  });

  it('let only one of two concurrent edits that together would close a cycle succeed', async () => {
    const b = await board();
    for (let round = 0; round < 3; round++) {
      const x = await b.create({ title: 'x' });
      const y = await b.create({ title: 'y' });
      const results = await Promise.all([
        send('PATCH', `/api/v1/boards/${b.id}/tasks/${x.id}`, { depends_on_task_ids: [y.id], version: 1 }),
        send('PATCH', `/api/v1/boards/${b.id}/tasks/${y.id}`, { depends_on_task_ids: [x.id], version: 1 }),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual([200, 422]);
      const loser = await json(results.find((r) => r.status === 422) as Response);
      expect(loser.error.code).toBe('dependency_cycle');
    }
  });
});
