import { eq, sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { memberBoardAccess, organizationMembers, users } from '../../workers/db/schema';
import { activityEvents, tasks } from '../../workers/db/schema-domain';
import { sha256Hex } from '../../workers/lib/crypto';
import { api, bearer, type Call, jwtOperators, operatorHeaders, send, testEnv } from './helpers';

interface Event {
  id: number;
  type: string;
  board_id: string | null;
  task_id: string | null;
  agent_id: string | null;
}

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

async function board(name = 'activity board', headers = operatorHeaders(), call: Call = api) {
  const { status, body } = await send('POST', '/api/v1/boards', { name }, headers, call);
  expect(status).toBe(201);
  return body as { id: string; organization_id: string };
}

const feed = async (query: string, headers = operatorHeaders(), call: Call = api) => {
  const { status, body } = await send('GET', `/api/v1/activity?${query}`, undefined, headers, call);
  expect(status, query).toBe(200);
  return body as { items: Event[]; next_cursor: string | null };
};

/** A board with a known history: created, four memory entries (two of them chat). */
async function boardWithHistory() {
  const b = await board();
  for (const [i, tags] of [['note'], ['chat'], ['note'], ['chat']].entries()) {
    const { status } = await send('POST', `/api/v1/boards/${b.id}/memory`, { content: `m${i}`, tags });
    expect(status).toBe(201);
  }
  const stored = await db
    .select()
    .from(activityEvents)
    .where(eq(activityEvents.boardId, b.id))
    .orderBy(activityEvents.id);
  expect(stored.map((e) => e.type)).toEqual([
    'board.created',
    'memory.created',
    'chat.message',
    'memory.created',
    'chat.message',
  ]);
  return { board: b, ids: stored.map((e) => e.id) };
}

describe('activity feed', () => {
  it('walks forward with after_id, oldest first, exactly the events after the last id seen', async () => {
    const { board: b, ids } = await boardWithHistory();
    const seen: number[] = [];
    let after = '0';
    for (let page = 0; page < 10; page++) {
      const { items, next_cursor } = await feed(`board_id=${b.id}&after_id=${after}&limit=2`);
      seen.push(...items.map((e) => e.id));
      if (!next_cursor) break;
      after = next_cursor;
    }
    expect(seen).toEqual(ids);

    // A client that saw up to the third event gets exactly the two after it.
    const gap = await feed(`board_id=${b.id}&after_id=${ids[2]}`);
    expect(gap.items.map((e) => e.id)).toEqual(ids.slice(3));
    expect(gap.next_cursor).toBeNull();
    expect((await feed(`board_id=${b.id}&after_id=${ids.at(-1)}`)).items).toEqual([]);
  });

  it('pages newest first with cursor', async () => {
    const { board: b, ids } = await boardWithHistory();
    const first = await feed(`board_id=${b.id}&limit=3`);
    expect(first.items.map((e) => e.id)).toEqual(ids.slice(2).reverse());
    expect(first.next_cursor).toBe(String(ids[2]));
    const second = await feed(`board_id=${b.id}&limit=3&cursor=${first.next_cursor}`);
    expect(second.items.map((e) => e.id)).toEqual(ids.slice(0, 2).reverse());
    expect(second.next_cursor).toBeNull();
    expect(first.items[0]).toMatchObject({ type: 'chat.message', board_id: b.id, actor_type: 'user' });
    expect(typeof first.items[0]?.id).toBe('number');
  });

  it('filters by type prefix, task and agent', async () => {
    const { board: b } = await boardWithHistory();
    const chat = await feed(`board_id=${b.id}&type=chat.`);
    expect(chat.items.map((e) => e.type)).toEqual(['chat.message', 'chat.message']);
    expect((await feed(`board_id=${b.id}&type=memory`)).items).toHaveLength(2);
    expect((await feed(`board_id=${b.id}&type=board.created`)).items).toHaveLength(1);
    expect((await feed(`board_id=${b.id}&type=%25`)).items).toHaveLength(0);

    const agent = await send('POST', '/api/v1/agents', { board_id: b.id, name: 'a' });
    const byAgent = await feed(`agent_id=${agent.body.id}`);
    expect(byAgent.items.map((e) => e.type)).toEqual(['agent.created']);

    const [task] = await db
      .insert(tasks)
      .values({ organizationId: b.organization_id, boardId: b.id, title: 't' })
      .returning();
    const approval = await send('POST', `/api/v1/boards/${b.id}/approvals`, {
      task_ids: [task?.id],
      action_type: 'merge',
      payload: { reason: 'r' },
      confidence: 50,
    });
    expect(approval.status).toBe(201);
    const byTask = await feed(`task_id=${task?.id}`);
    expect(byTask.items.map((e) => [e.type, e.board_id])).toEqual([['approval.created', b.id]]);
  });

  it("never shows another organization's events", async () => {
    const { board: b } = await boardWithHistory();
    const org = crypto.randomUUID();
    const secret = `mce_actforeign${crypto.randomUUID().replaceAll('-', '')}`;
    await db.execute(sql`INSERT INTO organizations (id, name) VALUES (${org}, 'activity foreign')`);
    await db.execute(sql`INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes)
      VALUES (${org}, 'foreign reader', 'mce_actfor', ${await sha256Hex(secret)}, array['read'])`);
    const foreign = bearer(secret);
    expect((await feed(`board_id=${b.id}`, foreign)).items).toEqual([]);
    const everything = await feed('limit=200', foreign);
    expect(everything.items.every((e) => e.board_id !== b.id)).toBe(true);
    expect(JSON.stringify(everything)).not.toContain(b.organization_id);
  });

  it('validates filters with 422 naming the field', async () => {
    for (const [query, field] of [
      ['after_id=1&cursor=2', 'cursor'],
      ['cursor=abc', 'cursor'],
      ['after_id=-1', 'after_id'],
      ['board_id=nope', 'board_id'],
      ['limit=201', 'limit'],
      [`type=${'x'.repeat(101)}`, 'type'],
    ]) {
      const { status, body } = await send('GET', `/api/v1/activity?${query}`);
      expect(status, query).toBe(422);
      expect(body.error.details.issues[0].path, query).toBe(field);
    }
    expect((await api('/api/v1/activity')).status).toBe(401);
  });
});

/** JWT mode: members see only the events of boards their access opens. */
const { clerk, newOperator: operator } = jwtOperators('activity');

describe('activity feed and board access', () => {
  it('shows a member only the events of boards they may read, and no board-less events', async () => {
    const owner = await operator();
    const open = await board('open', owner.headers, clerk);
    const closed = await board('closed', owner.headers, clerk);
    const group = await send('POST', '/api/v1/board-groups', { name: 'g' }, owner.headers, clerk);
    expect(group.status).toBe(201);

    const member = await operator();
    const [membership] = await db
      .insert(organizationMembers)
      .values({ organizationId: owner.organizationId, userId: member.userId, role: 'member' })
      .returning();
    if (!membership) throw new Error('membership insert failed');
    await db.update(users).set({ activeOrganizationId: owner.organizationId }).where(eq(users.id, member.userId));
    await db.insert(memberBoardAccess).values({ memberId: membership.id, boardId: open.id, canRead: true });

    const seen = await feed('limit=200', member.headers, clerk);
    expect(seen.items.map((e) => [e.type, e.board_id])).toEqual([['board.created', open.id]]);
    expect((await feed(`board_id=${closed.id}`, member.headers, clerk)).items).toEqual([]);

    const all = await feed('limit=200', owner.headers, clerk);
    expect(all.items.map((e) => e.type)).toEqual(['board_group.created', 'board.created', 'board.created']);
  });
});
