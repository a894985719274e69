import { and, eq, inArray, sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs, memberBoardAccess, organizationMembers, users } from '../../workers/db/schema';
import { activityEvents, approvalTasks, tasks } from '../../workers/db/schema-domain';
import { sha256Hex } from '../../workers/lib/crypto';
import { api, bearer, type Call, jwtOperators, operatorHeaders, send, testEnv } from './helpers';

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

interface Board {
  id: string;
  organization_id: string;
}

async function board(call: Call = api, headers: Record<string, string> = operatorHeaders()): Promise<Board> {
  const { status, body } = await send('POST', '/api/v1/boards', { name: 'approvals board' }, headers, call);
  expect(status).toBe(201);
  return body as Board;
}

async function taskOn(b: Board, title = 'task') {
  const [task] = await db.insert(tasks).values({ organizationId: b.organization_id, boardId: b.id, title }).returning();
  if (!task) throw new Error('task insert failed');
  return task.id;
}

async function lead(b: Board) {
  const { status, body } = await send('POST', '/api/v1/agents', { board_id: b.id, name: 'lead', is_lead: true });
  expect(status).toBe(201);
  return body as { id: string; token: string };
}

async function key(scopes: string[]) {
  const { status, body } = await send('POST', '/api/v1/api-keys', { name: 'approvals key', scopes });
  expect(status).toBe(201);
  return bearer(body.secret);
}

const request = (taskIds: string[], extra: Record<string, unknown> = {}) => ({
  task_ids: taskIds,
  action_type: 'deploy',
  payload: { reason: 'tests pass', diff_url: 'https://example.com/d/1' },
  confidence: 87,
  ...extra,
});

const create = (b: Board, taskIds: string[], headers = operatorHeaders(), extra: Record<string, unknown> = {}) =>
  send('POST', `/api/v1/boards/${b.id}/approvals`, request(taskIds, extra), headers);

const resolve = (b: Board, id: string, decision: 'approve' | 'reject', body?: unknown, headers = operatorHeaders()) =>
  send('POST', `/api/v1/boards/${b.id}/approvals/${id}/${decision}`, body, headers);

const eventsFor = async (approvalId: string) =>
  db
    .select()
    .from(activityEvents)
    .where(sql`${activityEvents.payload}->>'approval_id' = ${approvalId}`)
    .orderBy(activityEvents.id);

describe('approvals', () => {
  it('creates an approval for tasks of the board, audits it and records approval.created', async () => {
    const b = await board();
    const [t1, t2] = [await taskOn(b), await taskOn(b)];
    const { status, body } = await create(b, [t1, t2], operatorHeaders(), { rubric_scores: { safety: 4, tests: 5 } });
    expect(status).toBe(201);
    expect(body).toMatchObject({
      board_id: b.id,
      organization_id: b.organization_id,
      action_type: 'deploy',
      payload: { reason: 'tests pass', diff_url: 'https://example.com/d/1' },
      confidence: 87,
      rubric_scores: { safety: 4, tests: 5 },
      status: 'pending',
      requested_by_type: 'user',
      resolved_at: null,
      resolved_by_user_id: null,
    });
    expect(body.task_ids).toEqual([t1, t2].sort());

    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'approval.create'), eq(auditLogs.targetId, body.id)));
    expect(audit).toMatchObject({ success: true, actorType: 'user' });
    const [event] = await eventsFor(body.id);
    expect(event).toMatchObject({ type: 'approval.created', boardId: b.id, taskId: null });
    expect(event?.payload).toMatchObject({ task_ids: [t1, t2].sort(), action_type: 'deploy' });

    const list = await send('GET', `/api/v1/boards/${b.id}/approvals?status=pending`);
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({ total: 1, limit: 50, offset: 0 });
    expect(list.body.items[0]).toEqual(body);
    expect((await send('GET', `/api/v1/boards/${b.id}/approvals?status=approved`)).body.total).toBe(0);
  });

  it('allows one pending approval per task (409 approval_pending), and a new one once resolved', async () => {
    const b = await board();
    const [t1, t2] = [await taskOn(b), await taskOn(b)];
    const first = await create(b, [t1]);
    expect(first.status).toBe(201);
    const overlapping = await create(b, [t2, t1]);
    expect(overlapping.status).toBe(409);
    expect(overlapping.body.error).toMatchObject({ code: 'approval_pending', details: { task_ids: [t1] } });
    // Nothing of the refused approval was kept: t2 is still free.
    expect((await create(b, [t2])).status).toBe(201);

    expect((await resolve(b, first.body.id, 'reject')).status).toBe(200);
    expect((await create(b, [t1])).status).toBe(201);
  });

  it('admits one of many concurrent requests for the same task (meaningful on PostgreSQL)', async () => {
    const b = await board();
    const t = await taskOn(b);
    const results = await Promise.all(Array.from({ length: 8 }, () => create(b, [t])));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(7);
    const pending = await db
      .select()
      .from(approvalTasks)
      .where(and(eq(approvalTasks.taskId, t), eq(approvalTasks.pending, true)));
    expect(pending).toHaveLength(1);
  });

  it('approves: sets status, resolver and time, releases the tasks, and tells the board lead', async () => {
    const b = await board();
    const leadAgent = await lead(b);
    const t = await taskOn(b);
    const { body: approval } = await create(b, [t]);
    const { status, body } = await resolve(b, approval.id, 'approve', { note: 'ship it' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: approval.id, status: 'approved', resolution_note: 'ship it', task_ids: [t] });
    expect(body.resolved_by_user_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(body.resolved_at)).not.toBeNaN();
    const links = await db.select().from(approvalTasks).where(eq(approvalTasks.approvalId, approval.id));
    expect(links).toEqual([{ approvalId: approval.id, taskId: t, pending: false }]);

    const events = await eventsFor(approval.id);
    expect(events.map((e) => e.type)).toEqual(['approval.created', 'approval.approved', 'approval.resolved']);
    expect(events[2]).toMatchObject({ agentId: leadAgent.id, boardId: b.id, taskId: t });
    expect(events[2]?.payload).toMatchObject({ status: 'approved', note: 'ship it' });
    const actions = (await db.select().from(auditLogs).where(eq(auditLogs.targetId, approval.id))).map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['approval.create', 'approval.approve']));

    // Already resolved: both decisions are refused and nothing changes.
    for (const decision of ['approve', 'reject'] as const) {
      const again = await resolve(b, approval.id, decision);
      expect(again.status).toBe(409);
      expect(again.body.error).toMatchObject({ code: 'approval_not_pending', details: { status: 'approved' } });
    }
    expect((await eventsFor(approval.id)).length).toBe(3);
  });

  it('lets an approvals-scoped key reject (no body needed); no lead means no approval.resolved', async () => {
    const b = await board();
    const t = await taskOn(b);
    const { body: approval } = await create(b, [t]);
    const res = await api(`/api/v1/boards/${b.id}/approvals/${approval.id}/reject`, {
      method: 'POST',
      headers: await key(['approvals']),
    });
    expect(res.status).toBe(200);
    const body = await res.json<Record<string, unknown>>();
    expect(body).toMatchObject({ status: 'rejected', resolved_by_user_id: null, resolution_note: null });
    expect((await eventsFor(approval.id)).map((e) => e.type)).toEqual(['approval.created', 'approval.rejected']);
    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'approval.reject'), eq(auditLogs.targetId, approval.id)));
    expect(audit?.actorType).toBe('api_key');
  });

  it('refuses keys without the right scope with 403', async () => {
    const b = await board();
    const t = await taskOn(b);
    const { body: approval } = await create(b, [t]);
    const writer = await key(['write']);
    const reader = await key(['read']);
    expect((await resolve(b, approval.id, 'approve', undefined, writer)).status).toBe(403);
    expect((await resolve(b, approval.id, 'reject', undefined, reader)).status).toBe(403);
    expect((await create(b, [await taskOn(b)], reader)).status).toBe(403);
    expect((await create(b, [await taskOn(b)], await key(['approvals']))).status).toBe(403);
    expect((await send('GET', `/api/v1/boards/${b.id}/approvals`, undefined, reader)).status).toBe(200);
    const byWriter = await create(b, [await taskOn(b)], writer);
    expect(byWriter.status).toBe(201);
    expect(byWriter.body.requested_by_type).toBe('api_key');
  });

  it('answers 404 across organizations and boards, 422 for tasks of another board', async () => {
    const b = await board();
    const other = await board();
    const t = await taskOn(b);
    const elsewhere = await taskOn(other);
    const { body: approval } = await create(b, [t]);

    const wrongBoard = await create(b, [elsewhere]);
    expect(wrongBoard.status).toBe(422);
    expect(wrongBoard.body.error.details).toMatchObject({ missing_task_ids: [elsewhere] });
    expect(wrongBoard.body.error.details.issues[0].path).toBe('task_ids');
    expect((await create(b, [crypto.randomUUID()])).status).toBe(422);
    expect((await resolve(other, approval.id, 'approve')).status).toBe(404);
    expect((await resolve(b, crypto.randomUUID(), 'approve')).status).toBe(404);
    expect((await create({ ...b, id: crypto.randomUUID() }, [t])).status).toBe(404);

    const org = crypto.randomUUID();
    const secret = `mce_apprforeign${crypto.randomUUID().replaceAll('-', '')}`;
    await db.execute(sql`INSERT INTO organizations (id, name) VALUES (${org}, 'approvals foreign')`);
    await db.execute(sql`INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes)
      VALUES (${org}, 'foreign admin', 'mce_apprfo', ${await sha256Hex(secret)}, array['admin'])`);
    const foreign = bearer(secret);
    expect((await send('GET', `/api/v1/boards/${b.id}/approvals`, undefined, foreign)).status).toBe(404);
    expect((await create(b, [t], foreign)).status).toBe(404);
    expect((await resolve(b, approval.id, 'approve', undefined, foreign)).status).toBe(404);
    const still = await send('GET', `/api/v1/boards/${b.id}/approvals`);
    expect(still.body.items[0]).toMatchObject({ id: approval.id, status: 'pending' });
  });

  it('validates requests with 422 naming each field', async () => {
    const b = await board();
    const t = await taskOn(b);
    const bad = await send('POST', `/api/v1/boards/${b.id}/approvals`, {
      task_ids: [],
      action_type: 'x'.repeat(101),
      payload: { note: 'no reason' },
      confidence: 101,
      rubric_scores: { safety: 'high' },
    });
    expect(bad.status).toBe(422);
    const paths = bad.body.error.details.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining(['task_ids', 'action_type', 'payload.reason', 'confidence', 'rubric_scores.safety']),
    );
    const tooMany = Array.from({ length: 51 }, () => crypto.randomUUID());
    expect((await create(b, tooMany)).status).toBe(422);
    expect((await create(b, ['not-a-uuid'])).body.error.details.issues[0].path).toBe('task_ids.0');
    for (const confidence of [-1, 1.5, '80']) {
      expect((await create(b, [t], operatorHeaders(), { confidence })).status, String(confidence)).toBe(422);
    }
    expect((await create(b, [t], operatorHeaders(), { payload: 'because' })).status).toBe(422);
    expect((await send('GET', `/api/v1/boards/${b.id}/approvals?status=maybe`)).status).toBe(422);
    const { body: approval } = await create(b, [t]);
    const badNote = await resolve(b, approval.id, 'approve', { note: 'x'.repeat(5001) });
    expect(badNote.status).toBe(422);
    expect(badNote.body.error.details.issues[0].path).toBe('note');
    expect((await send('POST', `/api/v1/boards/${b.id}/approvals/nope/approve`, {})).status).toBe(422);
    // Nothing was created by the refused requests.
    const pending = await db
      .select()
      .from(approvalTasks)
      .where(inArray(approvalTasks.taskId, [t]));
    expect(pending).toHaveLength(1);
  });
});

/** JWT mode: a member whose access to a board is read-only. */
const { clerk, newOperator: operator } = jwtOperators('approvals');

describe('approvals and board access', () => {
  it('lets a member with board write resolve, and refuses a read-only member with 403', async () => {
    const owner = await operator();
    const b = await board(clerk, owner.headers);
    const t = await taskOn(b);
    const { body: approval } = await send(
      'POST',
      `/api/v1/boards/${b.id}/approvals`,
      request([t]),
      owner.headers,
      clerk,
    );
    expect(approval.status).toBe('pending');

    const member = await operator();
    const [membership] = await db
      .insert(organizationMembers)
      .values({ organizationId: owner.organizationId, userId: member.userId, role: 'member' })
      .returning();
    if (!membership) throw new Error('membership insert failed');
    await db.update(users).set({ activeOrganizationId: owner.organizationId }).where(eq(users.id, member.userId));
    const path = `/api/v1/boards/${b.id}/approvals/${approval.id}/approve`;

    // No access at all: the board does not exist for them.
    expect((await send('POST', path, {}, member.headers, clerk)).status).toBe(404);
    await db.insert(memberBoardAccess).values({ memberId: membership.id, boardId: b.id, canRead: true });
    expect((await send('GET', `/api/v1/boards/${b.id}/approvals`, undefined, member.headers, clerk)).status).toBe(200);
    const readOnly = await send('POST', path, {}, member.headers, clerk);
    expect(readOnly.status).toBe(403);
    const another = await send('POST', `/api/v1/boards/${b.id}/approvals`, request([t]), member.headers, clerk);
    expect(another.status).toBe(403);

    await db
      .update(memberBoardAccess)
      .set({ canWrite: true })
      .where(and(eq(memberBoardAccess.memberId, membership.id), eq(memberBoardAccess.boardId, b.id)));
    const approved = await send('POST', path, { note: 'member ok' }, member.headers, clerk);
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ status: 'approved', resolved_by_user_id: member.userId });
  });
});
