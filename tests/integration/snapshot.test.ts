import { createExecutionContext } from 'cloudflare:test';
import { sql } from 'drizzle-orm';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../workers/app';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { tasks } from '../../workers/db/schema-domain';
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
afterEach(() => vi.restoreAllMocks());

const approval = (taskIds: string[]) => ({
  task_ids: taskIds,
  action_type: 'release',
  payload: { reason: 'ready' },
  confidence: 90,
});

/** A board with a lead, a worker, four tasks in different approval states, chat and a note. */
async function populatedBoard() {
  const { body: board } = await send('POST', '/api/v1/boards', { name: 'snapshot board', max_agents: 5 });
  const lead = (await send('POST', '/api/v1/agents', { board_id: board.id, name: 'lead', is_lead: true })).body;
  const worker = (await send('POST', '/api/v1/agents', { board_id: board.id, name: 'worker' })).body;
  const insert = async (title: string, assignee: string | null = null) => {
    const [task] = await db
      .insert(tasks)
      .values({ organizationId: board.organization_id, boardId: board.id, title, assigneeAgentId: assignee })
      .returning();
    if (!task) throw new Error('task insert failed');
    return task.id;
  };
  const plain = await insert('plain', worker.id);
  const pending = await insert('pending');
  const approved = await insert('approved');
  const rejectedThenPending = await insert('rejected then pending');

  const p = await send('POST', `/api/v1/boards/${board.id}/approvals`, approval([pending, rejectedThenPending]));
  expect(p.status).toBe(201);
  const a = await send('POST', `/api/v1/boards/${board.id}/approvals`, approval([approved]));
  expect((await send('POST', `/api/v1/boards/${board.id}/approvals/${a.body.id}/approve`, {})).status).toBe(200);

  for (let i = 0; i < 55; i++) {
    const res = await send('POST', `/api/v1/boards/${board.id}/memory`, { content: `chat ${i}`, tags: ['chat'] });
    expect(res.status).toBe(201);
  }
  await send('POST', `/api/v1/boards/${board.id}/memory`, { content: 'not chat', tags: ['note'] });

  // The lead checked in just now; the worker was online but has been silent for 11 minutes.
  await db.execute(sql`UPDATE agents SET status = 'online', last_seen_at = now() WHERE id = ${lead.id}`);
  await db.execute(
    sql`UPDATE agents SET status = 'online', last_seen_at = now() - interval '11 minutes' WHERE id = ${worker.id}`,
  );
  return { board, lead, worker, plain, pending, approved, rejectedThenPending, pendingApproval: p.body };
}

describe('board snapshot', () => {
  it("returns the board's view model: tasks with assignee and approval counts, agents, pending approvals, chat", async () => {
    const s = await populatedBoard();
    const { status, body } = await send('GET', `/api/v1/boards/${s.board.id}/snapshot`);
    expect(status).toBe(200);
    expect(body.board).toEqual(s.board);

    const byTitle = Object.fromEntries(body.tasks.map((t: { title: string }) => [t.title, t]));
    expect(body.tasks.map((t: { title: string }) => t.title)).toEqual([
      'plain',
      'pending',
      'approved',
      'rejected then pending',
    ]);
    expect(byTitle.plain).toMatchObject({
      id: s.plain,
      status: 'inbox',
      assignee_agent_id: s.worker.id,
      assignee: { id: s.worker.id, name: 'worker' },
      approval_counts: { pending: 0, approved: 0 },
      version: 1,
    });
    expect(byTitle.pending).toMatchObject({ assignee: null, approval_counts: { pending: 1, approved: 0 } });
    expect(byTitle.approved.approval_counts).toEqual({ pending: 0, approved: 1 });

    expect(body.agents.map((a: { name: string; status: string }) => [a.name, a.status])).toEqual([
      ['lead', 'online'],
      ['worker', 'offline'],
    ]);
    expect(body.pending_approvals).toHaveLength(1);
    expect(body.pending_approvals[0]).toEqual(s.pendingApproval);

    expect(body.chat).toHaveLength(50);
    expect(body.chat[0]).toMatchObject({ content: 'chat 54', tags: ['chat'], author_type: 'user' });
    expect(body.chat.at(-1).content).toBe('chat 5');
    const text = JSON.stringify(body);
    expect(text).not.toContain('not chat');
    expect(text).not.toMatch(/token_hash|"token"/);
    expect(text).not.toContain(s.lead.token);
  });

  it('reads everything in one database round trip after authentication', async () => {
    const s = await populatedBoard();
    const app = createApp();
    const call = () =>
      app.request(
        `/api/v1/boards/${s.board.id}/snapshot`,
        { headers: operatorHeaders() },
        testEnv,
        createExecutionContext(),
      );
    expect((await call()).status).toBe(200); // warm: schema check and operator provisioning done
    const endpoint = new URL(String(testEnv.DATABASE_HTTP_ENDPOINT)).host;
    const spy = vi.spyOn(globalThis, 'fetch');
    const res = await call();
    expect(res.status).toBe(200);
    const queries = spy.mock.calls.filter(([input]) => {
      const url = input instanceof Request ? input.url : String(input);
      return url.includes(endpoint);
    });
    // One for the credential check, one for the snapshot.
    expect(queries).toHaveLength(2);
  });

  it('shows an empty board as empty lists, and refuses other organizations with 404', async () => {
    const { body: board } = await send('POST', '/api/v1/boards', { name: 'empty' });
    const empty = await send('GET', `/api/v1/boards/${board.id}/snapshot`);
    expect(empty.body).toMatchObject({ tasks: [], agents: [], pending_approvals: [], chat: [] });

    const reader = (await send('POST', '/api/v1/api-keys', { name: 'snap', scopes: ['read'] })).body;
    expect((await send('GET', `/api/v1/boards/${board.id}/snapshot`, undefined, bearer(reader.secret))).status).toBe(
      200,
    );
    const org = crypto.randomUUID();
    const secret = `mce_snapforeign${crypto.randomUUID().replaceAll('-', '')}`;
    await db.execute(sql`INSERT INTO organizations (id, name) VALUES (${org}, 'snapshot foreign')`);
    await db.execute(sql`INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes)
      VALUES (${org}, 'foreign admin', 'mce_snapfo', ${await sha256Hex(secret)}, array['admin'])`);
    expect((await send('GET', `/api/v1/boards/${board.id}/snapshot`, undefined, bearer(secret))).status).toBe(404);
    expect((await send('GET', `/api/v1/boards/${crypto.randomUUID()}/snapshot`)).status).toBe(404);
    expect((await send('GET', '/api/v1/boards/nope/snapshot')).status).toBe(422);
  });
});
