import { and, eq, sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { agents, auditLogs, boards, memberBoardAccess, organizationMembers, users } from '../../workers/db/schema';
import { activityEvents, approvals, boardMemory, tasks } from '../../workers/db/schema-domain';
import { api, bearer, json, jwtOperators, operatorHeaders, testEnv } from './helpers';

/** Other operators, each with an organization of their own. */
const { clerk, newOperator } = jwtOperators('boards');

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

function postJson(
  call: (path: string, init?: RequestInit) => Response | Promise<Response>,
  path: string,
  body: unknown,
  headers: Record<string, string>,
) {
  return call(path, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const createBoard = (name: string, headers = operatorHeaders()) => postJson(api, '/api/v1/boards', { name }, headers);

async function createKey(scopes: string[]) {
  const res = await postJson(api, '/api/v1/api-keys', { name: 'boards key', scopes }, operatorHeaders());
  expect(res.status).toBe(201);
  return (await json(res)) as { id: string; secret: string };
}

// biome-ignore lint/suspicious/noExplicitAny: a list response read back as JSON.
const ids = (list: Record<string, any>) => (list.items as { id: string }[]).map((b) => b.id);

describe('boards', () => {
  it('creates a board in the caller organization, audits it and reads it back', async () => {
    const res = await createBoard('  Launch  ');
    expect(res.status).toBe(201);
    const board = await json(res);
    expect(board).toMatchObject({ name: 'Launch' });
    expect(board.id).toMatch(/^[0-9a-f-]{36}$/);

    const one = await json(await api(`/api/v1/boards/${board.id}`, { headers: operatorHeaders() }));
    expect(one).toEqual(board);
    const list = await json(await api('/api/v1/boards?limit=200', { headers: operatorHeaders() }));
    expect(ids(list)).toContain(board.id);
    expect(list).toMatchObject({ limit: 200, offset: 0 });
    expect(list.total).toBeGreaterThanOrEqual(1);

    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'board.create'), eq(auditLogs.targetId, board.id)));
    expect(audit).toMatchObject({ actorType: 'user', organizationId: board.organization_id, success: true });
  });

  it('lets a write key create, a read key only read (403 on create), and refuses a revoked key', async () => {
    const writer = await createKey(['write']);
    const created = await createBoard('by automation', bearer(writer.secret));
    expect(created.status).toBe(201);
    const board = await json(created);

    const reader = await createKey(['read']);
    expect((await createBoard('not allowed', bearer(reader.secret))).status).toBe(403);
    const listed = await json(await api('/api/v1/boards?limit=200', { headers: bearer(reader.secret) }));
    expect(ids(listed)).toContain(board.id);
    expect((await api(`/api/v1/boards/${board.id}`, { headers: bearer(reader.secret) })).status).toBe(200);

    const revoke = await postJson(api, `/api/v1/api-keys/${reader.id}/revoke`, {}, operatorHeaders());
    expect(revoke.status).toBe(200);
    expect((await api('/api/v1/boards', { headers: bearer(reader.secret) })).status).toBe(401);
  });

  it("answers 404 for another organization's board and never lists it", async () => {
    const other = await newOperator();
    const res = await postJson(clerk, '/api/v1/boards', { name: 'elsewhere' }, other.headers);
    expect(res.status).toBe(201);
    const foreign = await json(res);
    expect(foreign.organization_id).toBe(other.organizationId);

    const key = await createKey(['admin']);
    for (const headers of [operatorHeaders(), bearer(key.secret)]) {
      expect((await api(`/api/v1/boards/${foreign.id}`, { headers })).status).toBe(404);
      const list = await api('/api/v1/boards?limit=200', { headers });
      expect(await list.text()).not.toContain(foreign.id);
    }
  });

  it('shows a member only the boards their access opens, and refuses them board creation', async () => {
    const owner = await newOperator();
    const board = async (name: string) => json(await postJson(clerk, '/api/v1/boards', { name }, owner.headers));
    const open = await board('open');
    const closed = await board('closed');
    const member = await newOperator();
    // A member of the owner's organization, acting there (the invite flow is tested on its own).
    const [membership] = await db
      .insert(organizationMembers)
      .values({ organizationId: owner.organizationId, userId: member.userId, role: 'member' })
      .returning();
    if (!membership) throw new Error('membership insert failed');
    await db.update(users).set({ activeOrganizationId: owner.organizationId }).where(eq(users.id, member.userId));
    await db.insert(memberBoardAccess).values({ memberId: membership.id, boardId: open.id, canRead: true });

    const list = await json(await clerk('/api/v1/boards', { headers: member.headers }));
    expect(ids(list)).toEqual([open.id]);
    expect(list.total).toBe(1);
    expect((await clerk(`/api/v1/boards/${open.id}`, { headers: member.headers })).status).toBe(200);
    expect((await clerk(`/api/v1/boards/${closed.id}`, { headers: member.headers })).status).toBe(404);
    expect((await postJson(clerk, '/api/v1/boards', { name: 'mine' }, member.headers)).status).toBe(403);

    // The owner sees every board of the organization.
    const all = await json(await clerk('/api/v1/boards', { headers: owner.headers }));
    expect(ids(all).sort()).toEqual([open.id, closed.id].sort());

    await db.update(organizationMembers).set({ allBoardsRead: true }).where(eq(organizationMembers.id, membership.id));
    const widened = await json(await clerk('/api/v1/boards', { headers: member.headers }));
    expect(ids(widened).sort()).toEqual([open.id, closed.id].sort());
  });

  it('validates input with 422 and answers 404 for an unknown board', async () => {
    const empty = await createBoard('   ');
    expect(empty.status).toBe(422);
    expect((await json(empty)).error.details.issues[0].path).toBe('name');
    const missing = await postJson(api, '/api/v1/boards', {}, operatorHeaders());
    expect(missing.status).toBe(422);
    expect((await createBoard('x'.repeat(201))).status).toBe(422);
    expect((await api(`/api/v1/boards/${crypto.randomUUID()}`, { headers: operatorHeaders() })).status).toBe(404);
    expect((await api('/api/v1/boards/nope', { headers: operatorHeaders() })).status).toBe(422);
    expect((await api('/api/v1/boards?limit=0', { headers: operatorHeaders() })).status).toBe(422);
    expect((await api('/api/v1/boards')).status).toBe(401);
  });
});

const send = (method: string, path: string, body: unknown, headers: Record<string, string> = operatorHeaders()) =>
  api(path, { method, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

async function activityOf(type: string, where: { boardId?: string; payloadBoardId?: string }) {
  const rows = await db
    .select()
    .from(activityEvents)
    .where(
      and(
        eq(activityEvents.type, type),
        where.boardId ? eq(activityEvents.boardId, where.boardId) : undefined,
        where.payloadBoardId ? sql`${activityEvents.payload}->>'board_id' = ${where.payloadBoardId}` : undefined,
      ),
    );
  return rows;
}

const issuePaths = (body: Record<string, unknown>) =>
  ((body.error as { details: { issues: { path: string }[] } }).details.issues ?? []).map((i) => i.path);

describe('board settings', () => {
  it('creates a board with the documented defaults, or with its rules, group and worker cap', async () => {
    const plain = await json(await createBoard('defaults'));
    expect(plain).toMatchObject({
      description: '',
      group_id: null,
      gateway_id: null,
      require_approval_for_done: true,
      require_review_before_done: false,
      comment_required_for_review: false,
      block_status_changes_with_pending_approval: false,
      only_lead_can_change_status: false,
      max_agents: 10,
    });

    const group = await json(await postJson(api, '/api/v1/board-groups', { name: 'ops' }, operatorHeaders()));
    const settings = {
      name: 'strict',
      description: 'Release work',
      group_id: group.id,
      require_approval_for_done: false,
      require_review_before_done: true,
      comment_required_for_review: true,
      block_status_changes_with_pending_approval: true,
      only_lead_can_change_status: true,
      max_agents: 3,
    };
    const res = await postJson(api, '/api/v1/boards', settings, operatorHeaders());
    expect(res.status).toBe(201);
    const board = await json(res);
    expect(board).toMatchObject(settings);
    expect(await json(await api(`/api/v1/boards/${board.id}`, { headers: operatorHeaders() }))).toEqual(board);
    const inGroup = await json(await api(`/api/v1/boards?group_id=${group.id}`, { headers: operatorHeaders() }));
    expect(ids(inGroup)).toEqual([board.id]);

    const [created] = await activityOf('board.created', { boardId: board.id });
    expect(created).toMatchObject({ actorType: 'user', message: 'Board "strict" created' });
  });

  it('updates only the fields sent, audits the change and records board.updated', async () => {
    const group = await json(await postJson(api, '/api/v1/board-groups', { name: 'g' }, operatorHeaders()));
    const board = await json(
      await postJson(api, '/api/v1/boards', { name: 'before', group_id: group.id }, operatorHeaders()),
    );
    const res = await send('PATCH', `/api/v1/boards/${board.id}`, {
      name: 'after',
      only_lead_can_change_status: true,
      max_agents: 0,
      group_id: null,
    });
    expect(res.status).toBe(200);
    const updated = await json(res);
    expect(updated).toMatchObject({
      name: 'after',
      only_lead_can_change_status: true,
      max_agents: 0,
      group_id: null,
      require_approval_for_done: true,
      description: '',
    });
    expect(Date.parse(updated.updated_at)).toBeGreaterThanOrEqual(Date.parse(board.updated_at));

    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'board.update'), eq(auditLogs.targetId, board.id)));
    expect(audit?.details).toEqual({ changes: ['name', 'group_id', 'only_lead_can_change_status', 'max_agents'] });
    const [event] = await activityOf('board.updated', { boardId: board.id });
    expect(event?.payload).toEqual({ changes: ['name', 'group_id', 'only_lead_can_change_status', 'max_agents'] });

    // An empty patch changes nothing but is still a valid request.
    const same = await send('PATCH', `/api/v1/boards/${board.id}`, {});
    expect(same.status).toBe(200);
    expect(await json(same)).toMatchObject({ name: 'after', max_agents: 0 });
  });

  it('refuses bad settings with 422 naming each field, and groups of another organization', async () => {
    const board = await json(await createBoard('validated'));
    const bad = await send('PATCH', `/api/v1/boards/${board.id}`, {
      name: '',
      max_agents: 1001,
      group_id: 'nope',
      require_approval_for_done: 'yes',
      description: 'x'.repeat(2001),
    });
    expect(bad.status).toBe(422);
    expect(issuePaths(await json(bad))).toEqual(
      expect.arrayContaining(['name', 'max_agents', 'group_id', 'require_approval_for_done', 'description']),
    );
    for (const max_agents of [-1, 2.5, '3']) {
      const res = await send('PATCH', `/api/v1/boards/${board.id}`, { max_agents });
      expect(res.status, String(max_agents)).toBe(422);
    }
    expect((await postJson(api, '/api/v1/boards', { name: 'n', max_agents: -1 }, operatorHeaders())).status).toBe(422);

    const other = await newOperator();
    const foreignGroup = await json(await postJson(clerk, '/api/v1/board-groups', { name: 'theirs' }, other.headers));
    expect(foreignGroup.id).toBeDefined();
    for (const res of [
      await send('PATCH', `/api/v1/boards/${board.id}`, { group_id: foreignGroup.id }),
      await postJson(api, '/api/v1/boards', { name: 'x', group_id: foreignGroup.id }, operatorHeaders()),
      await send('PATCH', `/api/v1/boards/${board.id}`, { group_id: crypto.randomUUID() }),
    ]) {
      expect(res.status).toBe(422);
      expect(issuePaths(await json(res))).toEqual(['group_id']);
    }
    const unchanged = await json(await api(`/api/v1/boards/${board.id}`, { headers: operatorHeaders() }));
    expect(unchanged.group_id).toBeNull();
  });

  it('lets admins and admin keys change a board, not write or read keys or members; 404 across organizations', async () => {
    const board = await json(await createBoard('guarded'));
    const reader = await createKey(['read']);
    expect((await send('PATCH', `/api/v1/boards/${board.id}`, { name: 'r' }, bearer(reader.secret))).status).toBe(403);
    // Board changes include its rules: a write key must not be able to relax its own approval gate.
    const writer = await createKey(['write']);
    expect((await send('PATCH', `/api/v1/boards/${board.id}`, { name: 'w' }, bearer(writer.secret))).status).toBe(403);
    const admin = await createKey(['admin']);
    const byKey = await send('PATCH', `/api/v1/boards/${board.id}`, { name: 'a' }, bearer(admin.secret));
    expect(byKey.status).toBe(200);

    const owner = await newOperator();
    const theirs = await json(await postJson(clerk, '/api/v1/boards', { name: 'theirs' }, owner.headers));
    expect((await send('PATCH', `/api/v1/boards/${theirs.id}`, { name: 'mine now' })).status).toBe(404);
    expect((await send('DELETE', `/api/v1/boards/${theirs.id}`, {})).status).toBe(404);
    expect((await send('PATCH', `/api/v1/boards/${crypto.randomUUID()}`, { name: 'x' })).status).toBe(404);

    const member = await newOperator();
    const [membership] = await db
      .insert(organizationMembers)
      .values({ organizationId: owner.organizationId, userId: member.userId, role: 'member', allBoardsWrite: true })
      .returning();
    expect(membership).toBeDefined();
    await db.update(users).set({ activeOrganizationId: owner.organizationId }).where(eq(users.id, member.userId));
    const call = (method: string, body: unknown) =>
      clerk(`/api/v1/boards/${theirs.id}`, {
        method,
        headers: { ...member.headers, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await call('PATCH', { name: 'member edit' })).status).toBe(403);
    expect((await call('DELETE', {})).status).toBe(403);
    const still = await json(await clerk(`/api/v1/boards/${theirs.id}`, { headers: owner.headers }));
    expect(still.name).toBe('theirs');
  });

  it('deletes a board and everything on it in one statement, keeping its id in the board.deleted event', async () => {
    const board = await json(await createBoard('doomed'));
    const lead = await json(
      await postJson(api, '/api/v1/agents', { board_id: board.id, name: 'lead', is_lead: true }, operatorHeaders()),
    );
    const [task] = await db
      .insert(tasks)
      .values({ organizationId: board.organization_id, boardId: board.id, title: 'doomed task' })
      .returning();
    if (!task) throw new Error('task insert failed');
    const approval = await postJson(
      api,
      `/api/v1/boards/${board.id}/approvals`,
      { task_ids: [task.id], action_type: 'ship', payload: { reason: 'done' }, confidence: 80 },
      operatorHeaders(),
    );
    expect(approval.status).toBe(201);
    const memory = await postJson(
      api,
      `/api/v1/boards/${board.id}/memory`,
      { content: 'hi', tags: ['chat'] },
      operatorHeaders(),
    );
    expect(memory.status).toBe(201);

    const writer = await createKey(['write']);
    expect((await send('DELETE', `/api/v1/boards/${board.id}`, {}, bearer(writer.secret))).status).toBe(403);

    const res = await api(`/api/v1/boards/${board.id}`, { method: 'DELETE', headers: operatorHeaders() });
    expect(res.status).toBe(204);
    expect((await api(`/api/v1/boards/${board.id}`, { headers: operatorHeaders() })).status).toBe(404);
    expect((await api(`/api/v1/boards/${board.id}`, { method: 'DELETE', headers: operatorHeaders() })).status).toBe(
      404,
    );

    expect(await db.select().from(boards).where(eq(boards.id, board.id))).toEqual([]);
    expect(await db.select().from(agents).where(eq(agents.boardId, board.id))).toEqual([]);
    expect(await db.select().from(tasks).where(eq(tasks.boardId, board.id))).toEqual([]);
    expect(await db.select().from(approvals).where(eq(approvals.boardId, board.id))).toEqual([]);
    expect(await db.select().from(boardMemory).where(eq(boardMemory.boardId, board.id))).toEqual([]);
    const me = await api('/api/v1/agent/me', {
      headers: { 'X-Agent-Token': lead.token, 'CF-Connecting-IP': '10.77.0.1' },
    });
    expect(me.status).toBe(401);

    const [deleted] = await activityOf('board.deleted', { payloadBoardId: board.id });
    expect(deleted).toMatchObject({ boardId: null, message: 'Board "doomed" deleted' });
    expect(deleted?.payload).toMatchObject({ board_id: board.id, name: 'doomed' });
    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'board.delete'), eq(auditLogs.targetId, board.id)));
    expect(audit).toMatchObject({ success: true, actorType: 'user' });
  });
});
