import { and, eq, sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs } from '../../workers/db/schema';
import { activityEvents, tasks } from '../../workers/db/schema-domain';
import { api, freshIp, operatorHeaders, testEnv } from './helpers';

/** A fresh client address per call: the failed-agent-auth limiter counts per IP and is shared. */

async function send(method: string, path: string, body?: unknown, headers: Record<string, string> = operatorHeaders()) {
  const res = await api(path, {
    method,
    headers: { 'CF-Connecting-IP': freshIp(), ...headers, 'Content-Type': 'application/json' },
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

interface Agent {
  id: string;
  token: string;
  headers: Record<string, string>;
}

async function setup(name = 'agent api board') {
  const board = (await send('POST', '/api/v1/boards', { name })).body as { id: string; organization_id: string };
  const agent = async (agentName: string, isLead = false): Promise<Agent> => {
    const { status, body } = await send('POST', '/api/v1/agents', {
      board_id: board.id,
      name: agentName,
      is_lead: isLead,
    });
    expect(status).toBe(201);
    return { id: body.id, token: body.token, headers: { 'X-Agent-Token': body.token } };
  };
  const task = async (title = 'task') => {
    const [row] = await db
      .insert(tasks)
      .values({ organizationId: board.organization_id, boardId: board.id, title })
      .returning();
    if (!row) throw new Error('task insert failed');
    return row.id;
  };
  return { board, agent, task };
}

const asAgent = (a: Agent, method: string, path: string, body?: unknown) => send(method, path, body, a.headers);

describe('agent API: who am I and heartbeat', () => {
  it('answers healthz with the agent, its board and its organization; /agent/me still works', async () => {
    const { board, agent } = await setup('healthz board');
    const lead = await agent('lead', true);
    const { status, body } = await asAgent(lead, 'GET', '/api/v1/agent/healthz');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      ok: true,
      agent: { id: lead.id, name: 'lead', is_lead: true, board_id: board.id, status: 'provisioning' },
      board: { id: board.id, name: 'healthz board', organization_id: board.organization_id },
      organization: { id: board.organization_id },
    });
    expect(JSON.stringify(body)).not.toContain(lead.token);
    const me = await asAgent(lead, 'GET', '/api/v1/agent/me');
    expect(me.body).toEqual({
      id: lead.id,
      name: 'lead',
      board_id: board.id,
      organization_id: board.organization_id,
      is_lead: true,
    });
  });

  it('makes the agent online; ten silent minutes read as offline; updating and deleting stay', async () => {
    const { agent } = await setup();
    const worker = await agent('worker');
    const beat = await asAgent(worker, 'POST', '/api/v1/agent/heartbeat');
    expect(beat.status).toBe(200);
    expect(beat.body).toMatchObject({ id: worker.id, status: 'online' });
    expect(Date.now() - Date.parse(beat.body.last_seen_at)).toBeLessThan(60_000);
    const read = async () => (await send('GET', `/api/v1/agents/${worker.id}`)).body;
    expect(await read()).toMatchObject({ status: 'online' });

    // Silent for 11 minutes: stored online, shown offline.
    await db.execute(sql`UPDATE agents SET last_seen_at = now() - interval '11 minutes' WHERE id = ${worker.id}`);
    expect(await read()).toMatchObject({ status: 'offline' });
    const listed = await send('GET', `/api/v1/agents?board_id=${(await read()).board_id}`);
    expect(listed.body.items[0]).toMatchObject({ id: worker.id, status: 'offline' });
    // Nine minutes is still online.
    await db.execute(sql`UPDATE agents SET last_seen_at = now() - interval '9 minutes' WHERE id = ${worker.id}`);
    expect(await read()).toMatchObject({ status: 'online' });

    await db.execute(sql`UPDATE agents SET last_seen_at = now() - interval '11 minutes' WHERE id = ${worker.id}`);
    expect((await asAgent(worker, 'POST', '/api/v1/agent/heartbeat')).body.status).toBe('online');
    expect(await read()).toMatchObject({ status: 'online' });

    // Only the change of status is audited and recorded; routine heartbeats are not.
    const audits = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'agent.online'), eq(auditLogs.targetId, worker.id)));
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({ actorType: 'agent', actorId: worker.id });
    const events = await db
      .select()
      .from(activityEvents)
      .where(and(eq(activityEvents.type, 'agent.online'), eq(activityEvents.agentId, worker.id)));
    expect(events).toHaveLength(1);

    for (const status of ['updating', 'deleting']) {
      await db.execute(sql`UPDATE agents SET status = ${status} WHERE id = ${worker.id}`);
      expect((await asAgent(worker, 'POST', '/api/v1/agent/heartbeat')).body.status).toBe(status);
    }
  });

  it('refuses operator credentials and API keys on the agent API with 401', async () => {
    const key = (await send('POST', '/api/v1/api-keys', { name: 'agent api', scopes: ['admin'] })).body;
    for (const path of ['/api/v1/agent/heartbeat', '/api/v1/agent/memory', '/api/v1/agent/approvals']) {
      expect((await send('POST', path, {})).status, path).toBe(401);
      expect((await send('POST', path, {}, { Authorization: `Bearer ${key.secret}` })).status, path).toBe(401);
    }
    expect((await send('GET', '/api/v1/agent/healthz', undefined, {})).status).toBe(401);
  });
});

describe('agent API: board, agents, memory and approvals', () => {
  it("shows the agent its own board and that board's agents only", async () => {
    const { board, agent } = await setup('own board');
    const lead = await agent('lead', true);
    const worker = await agent('worker');
    const elsewhere = await setup('other board');
    const stranger = await elsewhere.agent('stranger');

    const boards = await asAgent(worker, 'GET', '/api/v1/agent/boards');
    expect(boards.body).toMatchObject({ total: 1, items: [{ id: board.id, name: 'own board' }] });
    const agents = await asAgent(worker, 'GET', '/api/v1/agent/agents');
    expect(agents.body.total).toBe(2);
    expect(agents.body.items.map((a: { id: string }) => a.id).sort()).toEqual([lead.id, worker.id].sort());
    expect(JSON.stringify(agents.body)).not.toContain(stranger.id);
    expect(JSON.stringify(agents.body)).not.toContain(lead.token);
    expect((await asAgent(worker, 'GET', '/api/v1/agent/agents?limit=0')).status).toBe(422);
  });

  it('reads and writes board memory as the agent; chat messages name the agent', async () => {
    const { board, agent } = await setup();
    const worker = await agent('worker');
    const other = await (await setup()).agent('other');
    const wrote = await asAgent(worker, 'POST', '/api/v1/agent/memory', {
      content: 'deploy finished',
      tags: ['chat'],
      source: 'ci',
    });
    expect(wrote.status).toBe(201);
    expect(wrote.body).toMatchObject({ board_id: board.id, author_type: 'agent', author_id: worker.id, source: 'ci' });
    await asAgent(worker, 'POST', '/api/v1/agent/memory', { content: 'a note' });

    const chat = await asAgent(worker, 'GET', '/api/v1/agent/memory?tag=chat');
    expect(chat.body.items.map((m: { content: string }) => m.content)).toEqual(['deploy finished']);
    expect((await asAgent(worker, 'GET', '/api/v1/agent/memory')).body.total).toBe(2);
    // The operator sees the same board memory; another board's agent sees none of it.
    expect((await send('GET', `/api/v1/boards/${board.id}/memory`)).body.total).toBe(2);
    expect((await asAgent(other, 'GET', '/api/v1/agent/memory')).body.total).toBe(0);

    const [event] = await db
      .select()
      .from(activityEvents)
      .where(sql`${activityEvents.payload}->>'memory_id' = ${wrote.body.id}`);
    expect(event).toMatchObject({ type: 'chat.message', agentId: worker.id, actorType: 'agent', boardId: board.id });
    const bad = await asAgent(worker, 'POST', '/api/v1/agent/memory', { content: '', tags: Array(21).fill('t') });
    expect(bad.status).toBe(422);
    expect(bad.body.error.details.issues.map((i: { path: string }) => i.path).sort()).toEqual(['content', 'tags']);
  });

  it('requests approvals for tasks of its board and lists them; 409 and 422 as for operators', async () => {
    const { board, agent, task } = await setup();
    const worker = await agent('worker');
    const [t1, t2] = [await task(), await task()];
    const foreignTask = await (await setup()).task();
    const request = (taskIds: string[]) => ({
      task_ids: taskIds,
      action_type: 'close_ticket',
      payload: { reason: 'fixed in #42' },
      confidence: 70,
    });

    const created = await asAgent(worker, 'POST', '/api/v1/agent/approvals', request([t1]));
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      board_id: board.id,
      task_ids: [t1],
      status: 'pending',
      requested_by_type: 'agent',
      requested_by_id: worker.id,
    });
    const again = await asAgent(worker, 'POST', '/api/v1/agent/approvals', request([t2, t1]));
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('approval_pending');
    const foreign = await asAgent(worker, 'POST', '/api/v1/agent/approvals', request([foreignTask]));
    expect(foreign.status).toBe(422);
    expect(foreign.body.error.details.issues[0].path).toBe('task_ids');
    const invalid = await asAgent(worker, 'POST', '/api/v1/agent/approvals', { ...request([t2]), confidence: 300 });
    expect(invalid.status).toBe(422);

    const approve = await send('POST', `/api/v1/boards/${board.id}/approvals/${created.body.id}/approve`);
    expect(approve.status).toBe(200);
    const second = await asAgent(worker, 'POST', '/api/v1/agent/approvals', request([t2]));
    expect(second.status).toBe(201);

    const pending = await asAgent(worker, 'GET', '/api/v1/agent/approvals?status=pending');
    expect(pending.body.items.map((a: { id: string }) => a.id)).toEqual([second.body.id]);
    const all = await asAgent(worker, 'GET', '/api/v1/agent/approvals');
    expect(all.body).toMatchObject({ total: 2, limit: 50, offset: 0 });
    expect(all.body.items.map((a: { status: string }) => a.status)).toEqual(['pending', 'approved']);

    const [audit] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'approval.create'), eq(auditLogs.targetId, created.body.id)));
    expect(audit).toMatchObject({ actorType: 'agent', actorId: worker.id });
  });
});
