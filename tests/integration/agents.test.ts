import { and, eq, sql } from 'drizzle-orm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { openDatabase } from '../../workers/db/client';
import { agents, auditLogs } from '../../workers/db/schema';
import { activityEvents, tasks } from '../../workers/db/schema-domain';
import { sha256Hex } from '../../workers/lib/crypto';
import { api, appWith, bearer, freshIp, json, operatorHeaders, testEnv } from './helpers';

const agentHeader = (token: string) => ({ 'X-Agent-Token': token });
/** A fresh client address per test: the failed-agent-auth limiter counts per IP and is shared. */

async function post(path: string, body: unknown, headers: Record<string, string> = operatorHeaders()) {
  const res = await api(path, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { res, body: await json(res) };
}

async function createBoard(name = 'agents board') {
  const { res, body } = await post('/api/v1/boards', { name });
  expect(res.status).toBe(201);
  return body as { id: string; organization_id: string };
}

async function createAgent(boardId: string, extra: Record<string, unknown> = {}) {
  const { res, body } = await post('/api/v1/agents', { board_id: boardId, name: 'worker-1', ...extra });
  expect(res.status).toBe(201);
  return body as { id: string; token: string; token_prefix: string; [k: string]: unknown };
}

async function createKey(scopes: string[]) {
  const { res, body } = await post('/api/v1/api-keys', { name: `agents-${scopes.join('-')}`, scopes });
  expect(res.status).toBe(201);
  return body as { id: string; secret: string };
}

const me = (headers: Record<string, string>, ip = freshIp()) =>
  api('/api/v1/agent/me', { headers: { ...headers, 'CF-Connecting-IP': ip } });

async function auditActions(targetId: string) {
  const db = await openDatabase(settingsSchema.parse(testEnv));
  const rows = await db.select().from(auditLogs).where(eq(auditLogs.targetId, targetId));
  return rows.map((r) => r.action);
}

afterEach(() => vi.restoreAllMocks());

describe('agents and their tokens', () => {
  it('returns the token exactly once; lists and reads show only has_token', async () => {
    const board = await createBoard();
    const agent = await createAgent(board.id, { is_lead: true });
    expect(agent.token).toMatch(/^mca_[A-Za-z0-9_-]{43}$/);
    expect(agent.token_prefix).toBe(agent.token.slice(0, 10));
    expect(agent).toMatchObject({ board_id: board.id, is_lead: true, has_token: true, name: 'worker-1' });

    const list = await json(await api(`/api/v1/agents?board_id=${board.id}`, { headers: operatorHeaders() }));
    expect(list.total).toBe(1);
    expect(list.items[0]).toMatchObject({ id: agent.id, has_token: true });
    const one = await json(await api(`/api/v1/agents/${agent.id}`, { headers: operatorHeaders() }));
    expect(one).toMatchObject({ id: agent.id, has_token: true, organization_id: board.organization_id });
    for (const shown of [JSON.stringify(list), JSON.stringify(one)]) {
      expect(shown).not.toContain(agent.token);
      expect(shown).not.toMatch(/token_hash|"token"/);
    }
    expect(await auditActions(agent.id)).toContain('agent.create');
  });

  it('authenticates the agent on /api/v1/agent/me by X-Agent-Token and by Bearer', async () => {
    const board = await createBoard();
    const agent = await createAgent(board.id);
    const expected = {
      id: agent.id,
      name: 'worker-1',
      board_id: board.id,
      organization_id: board.organization_id,
      is_lead: false,
    };
    const viaHeader = await me(agentHeader(agent.token));
    expect(viaHeader.status).toBe(200);
    expect(await json(viaHeader)).toEqual(expected);
    const viaBearer = await me(bearer(agent.token));
    expect(viaBearer.status).toBe(200);
    expect(await json(viaBearer)).toEqual(expected);
  });

  it('keeps agent tokens out of operator routes and operator credentials out of the agent API', async () => {
    const board = await createBoard();
    const agent = await createAgent(board.id);
    const key = await createKey(['admin']);
    for (const path of ['/api/v1/boards', `/api/v1/agents/${agent.id}`, '/api/v1/api-keys']) {
      const res = await api(path, { headers: bearer(agent.token) });
      expect(res.status, path).toBe(401);
    }
    const ip = freshIp();
    expect((await me(operatorHeaders(), ip)).status).toBe(401);
    expect((await me(bearer(key.secret), ip)).status).toBe(401);
    expect((await me(agentHeader(key.secret), ip)).status).toBe(401);
    expect((await me({}, ip)).status).toBe(401);
  });

  it('rotates a token: the old one gets 401 at once, the new one works', async () => {
    const board = await createBoard();
    const agent = await createAgent(board.id);
    expect((await me(agentHeader(agent.token))).status).toBe(200);
    const { res, body } = await post(`/api/v1/agents/${agent.id}/token/rotate`, undefined);
    expect(res.status).toBe(200);
    expect(body.token).toMatch(/^mca_/);
    expect(body.token).not.toBe(agent.token);
    expect(body).toMatchObject({ id: agent.id, has_token: true, token_prefix: body.token.slice(0, 10) });
    expect((await me(agentHeader(agent.token))).status).toBe(401);
    expect((await me(agentHeader(body.token))).status).toBe(200);
    const read = await json(await api(`/api/v1/agents/${agent.id}`, { headers: operatorHeaders() }));
    expect(JSON.stringify(read)).not.toContain(body.token);
    expect(await auditActions(agent.id)).toContain('agent.token_rotate');
  });

  it('revokes a token: the agent gets 401 and reads show no token', async () => {
    const board = await createBoard();
    const agent = await createAgent(board.id);
    const { res, body } = await post(`/api/v1/agents/${agent.id}/token/revoke`, undefined);
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ id: agent.id, has_token: false });
    expect(body.token_revoked_at).not.toBeNull();
    expect(body.token).toBeUndefined();
    const refused = await me(agentHeader(agent.token));
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('Bearer');
    expect((await json(refused)).error.code).toBe('unauthenticated');
    expect(await auditActions(agent.id)).toContain('agent.token_revoke');

    // A rotation afterwards hands the agent a working token again.
    const rotated = await post(`/api/v1/agents/${agent.id}/token/rotate`, undefined);
    expect(rotated.body).toMatchObject({ has_token: true, token_revoked_at: null });
    expect((await me(agentHeader(rotated.body.token))).status).toBe(200);
  });

  it('lets a write key manage agents and refuses a read key on every agent write with 403', async () => {
    const board = await createBoard();
    const writer = await createKey(['write']);
    const created = await post('/api/v1/agents', { board_id: board.id, name: 'by-key' }, bearer(writer.secret));
    expect(created.res.status).toBe(201);
    expect(created.body.token).toMatch(/^mca_/);

    const reader = await createKey(['read']);
    const asReader = bearer(reader.secret);
    expect((await api('/api/v1/agents', { headers: asReader })).status).toBe(200);
    expect((await api(`/api/v1/agents/${created.body.id}`, { headers: asReader })).status).toBe(200);
    const writes = [
      post('/api/v1/agents', { board_id: board.id, name: 'nope' }, asReader),
      post(`/api/v1/agents/${created.body.id}/token/rotate`, undefined, asReader),
      post(`/api/v1/agents/${created.body.id}/token/revoke`, undefined, asReader),
    ];
    for (const { res } of await Promise.all(writes)) expect(res.status).toBe(403);
    // The agent's token is untouched by the refused calls.
    expect((await me(agentHeader(created.body.token))).status).toBe(200);

    await post(`/api/v1/api-keys/${writer.id}/revoke`, undefined);
    const revoked = await post('/api/v1/agents', { board_id: board.id, name: 'late' }, bearer(writer.secret));
    expect(revoked.res.status).toBe(401);
  });

  it('answers 404 for a board or agent that does not exist and 422 for bad input', async () => {
    const missingBoard = await post('/api/v1/agents', { board_id: crypto.randomUUID(), name: 'orphan' });
    expect(missingBoard.res.status).toBe(404);
    for (const path of [
      `/api/v1/agents/${crypto.randomUUID()}/token/rotate`,
      `/api/v1/agents/${crypto.randomUUID()}/token/revoke`,
    ]) {
      expect((await post(path, undefined)).res.status).toBe(404);
    }
    expect((await api(`/api/v1/agents/${crypto.randomUUID()}`, { headers: operatorHeaders() })).status).toBe(404);

    const invalid = await post('/api/v1/agents', { board_id: 'not-a-uuid', name: '', is_lead: 'yes' });
    expect(invalid.res.status).toBe(422);
    const paths = invalid.body.error.details.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['board_id', 'name', 'is_lead']));
    expect((await api('/api/v1/agents?board_id=nope', { headers: operatorHeaders() })).status).toBe(422);
  });
});

describe('agent authentication limits', () => {
  it('rate limits failed agent authentication per IP, good tokens from that IP included', async () => {
    const app = appWith({ AGENT_AUTH_FAILURE_LIMIT: '3/60' });
    const agent = await createAgent((await createBoard()).id);
    const ip = freshIp();
    const call = (token: string, from = ip) =>
      app('/api/v1/agent/me', { headers: { 'X-Agent-Token': token, 'CF-Connecting-IP': from } });
    for (let i = 0; i < 3; i++) expect((await call(`mca_wrong-${i}-${'x'.repeat(40)}`)).status).toBe(401);
    const limited = await call(`mca_wrong-4-${'x'.repeat(40)}`);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await json(limited)).error.code).toBe('rate_limited');
    expect((await call(agent.token)).status).toBe(429);
    expect((await call(agent.token, freshIp())).status).toBe(200);
  });

  it('rate limits each agent on its own', async () => {
    const app = appWith({ AGENT_RATE_LIMIT: '2/60' });
    const board = await createBoard();
    const [first, second] = [await createAgent(board.id), await createAgent(board.id)];
    const call = (token: string) =>
      app('/api/v1/agent/me', { headers: { 'X-Agent-Token': token, 'CF-Connecting-IP': freshIp() } });
    expect((await call(first.token)).status).toBe(200);
    expect((await call(first.token)).status).toBe(200);
    const limited = await call(first.token);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).not.toBeNull();
    expect((await call(second.token)).status).toBe(200);
  });

  it('logs and audits only the first 6 characters of a refused token', async () => {
    const warnings: string[] = [];
    vi.spyOn(console, 'warn').mockImplementation((line: unknown) => {
      warnings.push(String(line));
    });
    const app = appWith({});
    const token = `mca_${crypto.randomUUID().replaceAll('-', '')}zz`;
    const ip = freshIp();
    const res = await app('/api/v1/agent/me', { headers: { 'X-Agent-Token': token, 'CF-Connecting-IP': ip } });
    expect(res.status).toBe(401);
    const all = warnings.join('\n');
    expect(all).toContain('auth.failed');
    expect(all).toContain(`"${token.slice(0, 6)}"`);
    expect(all).not.toContain(token);
    expect(all).not.toContain(token.slice(0, 7));

    const db = await openDatabase(settingsSchema.parse(testEnv));
    const [row] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'auth.failed'), eq(auditLogs.ip, ip)));
    expect(row).toMatchObject({ success: false, details: { token_prefix: token.slice(0, 6) } });
    expect(JSON.stringify(row)).not.toContain(token);
  });
});

async function send(method: string, path: string, body?: unknown, headers: Record<string, string> = operatorHeaders()) {
  const res = await api(path, {
    method,
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { res, body: text ? JSON.parse(text) : null };
}

async function database() {
  return openDatabase(settingsSchema.parse(testEnv));
}

/** An admin API key of a fresh organization: the credential that must not reach this one's agents. */
async function foreignAdminKey() {
  const db = await database();
  const org = crypto.randomUUID();
  const secret = `mce_agentsforeign${crypto.randomUUID().replaceAll('-', '')}`;
  await db.execute(sql`INSERT INTO organizations (id, name) VALUES (${org}, 'agents foreign')`);
  await db.execute(sql`INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes)
    VALUES (${org}, 'foreign admin', 'mce_agents', ${await sha256Hex(secret)}, array['admin'])`);
  return bearer(secret);
}

async function boardWithCap(maxAgents: number) {
  const { res, body } = await post('/api/v1/boards', { name: `cap ${maxAgents}`, max_agents: maxAgents });
  expect(res.status).toBe(201);
  return body as { id: string; organization_id: string };
}

async function eventsOf(agentId: string) {
  const db = await database();
  const rows = await db
    .select()
    .from(activityEvents)
    .where(sql`${activityEvents.agentId} = ${agentId} OR ${activityEvents.payload}->>'agent_id' = ${agentId}`)
    .orderBy(activityEvents.id);
  return rows;
}

describe('agents on a board', () => {
  it('starts agents as provisioning and lets managers rename, promote and set their status', async () => {
    const board = await createBoard();
    const agent = await createAgent(board.id);
    expect(agent).toMatchObject({ status: 'provisioning', provision_error: null, is_lead: false });

    const { res, body } = await send('PATCH', `/api/v1/agents/${agent.id}`, {
      name: 'renamed',
      is_lead: true,
      status: 'updating',
    });
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ id: agent.id, name: 'renamed', is_lead: true, status: 'updating', has_token: true });
    expect(body.token).toBeUndefined();
    const read = await json(await api(`/api/v1/agents/${agent.id}`, { headers: operatorHeaders() }));
    expect(read).toEqual(body);

    expect(await auditActions(agent.id)).toEqual(expect.arrayContaining(['agent.create', 'agent.update']));
    const events = await eventsOf(agent.id);
    expect(events.map((e) => e.type)).toEqual(['agent.created', 'agent.updated']);
    expect(events[0]).toMatchObject({ boardId: board.id, agentId: agent.id, actorType: 'user' });
  });

  it('keeps one lead per board: 409 lead_exists on create and on promotion', async () => {
    const board = await createBoard();
    await createAgent(board.id, { is_lead: true, name: 'lead' });
    const second = await post('/api/v1/agents', { board_id: board.id, name: 'second lead', is_lead: true });
    expect(second.res.status).toBe(409);
    expect(second.body.error.code).toBe('lead_exists');

    const worker = await createAgent(board.id);
    const promote = await send('PATCH', `/api/v1/agents/${worker.id}`, { is_lead: true });
    expect(promote.res.status).toBe(409);
    expect(promote.body.error.code).toBe('lead_exists');
    const list = await json(await api(`/api/v1/agents?board_id=${board.id}`, { headers: operatorHeaders() }));
    expect(list.items.filter((a: { is_lead: boolean }) => a.is_lead)).toHaveLength(1);
  });

  it('caps workers at max_agents (the lead not counted) with 409 agent_limit_reached', async () => {
    const board = await boardWithCap(2);
    await createAgent(board.id, { name: 'w1' });
    const lead = await createAgent(board.id, { name: 'lead', is_lead: true });
    await createAgent(board.id, { name: 'w2' });
    const third = await post('/api/v1/agents', { board_id: board.id, name: 'w3' });
    expect(third.res.status).toBe(409);
    expect(third.body.error).toMatchObject({ code: 'agent_limit_reached', details: { max_agents: 2 } });

    // Demoting the lead into a full board would make a third worker.
    const demote = await send('PATCH', `/api/v1/agents/${lead.id}`, { is_lead: false });
    expect(demote.res.status).toBe(409);
    expect(demote.body.error.code).toBe('agent_limit_reached');

    // Raising the cap admits one more.
    expect((await send('PATCH', `/api/v1/boards/${board.id}`, { max_agents: 3 })).res.status).toBe(200);
    expect((await post('/api/v1/agents', { board_id: board.id, name: 'w3' })).res.status).toBe(201);
    const zero = await boardWithCap(0);
    expect((await post('/api/v1/agents', { board_id: zero.id, name: 'w' })).res.status).toBe(409);
    expect((await post('/api/v1/agents', { board_id: zero.id, name: 'l', is_lead: true })).res.status).toBe(201);
  });

  it('admits exactly max_agents workers when creates race (meaningful on PostgreSQL)', async () => {
    const board = await boardWithCap(3);
    const attempts = await Promise.all(
      Array.from({ length: 12 }, (_, i) => post('/api/v1/agents', { board_id: board.id, name: `racer-${i}` })),
    );
    const statuses = attempts.map((a) => a.res.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(3);
    expect(statuses.filter((s) => s === 409)).toHaveLength(9);
    for (const a of attempts.filter((x) => x.res.status === 409)) expect(a.body.error.code).toBe('agent_limit_reached');
    const db = await database();
    const stored = await db.select().from(agents).where(eq(agents.boardId, board.id));
    expect(stored).toHaveLength(3);
  });

  it('deletes an agent: its token stops working, its tasks are unassigned, the event keeps its id', async () => {
    const board = await createBoard();
    const agent = await createAgent(board.id);
    const db = await database();
    const [task] = await db
      .insert(tasks)
      .values({ organizationId: board.organization_id, boardId: board.id, title: 't', assigneeAgentId: agent.id })
      .returning();
    const reader = await createKey(['read']);
    expect((await send('DELETE', `/api/v1/agents/${agent.id}`, undefined, bearer(reader.secret))).res.status).toBe(403);
    expect((await send('DELETE', `/api/v1/agents/${agent.id}`, undefined, await foreignAdminKey())).res.status).toBe(
      404,
    );

    const { res } = await send('DELETE', `/api/v1/agents/${agent.id}`);
    expect(res.status).toBe(204);
    expect((await api(`/api/v1/agents/${agent.id}`, { headers: operatorHeaders() })).status).toBe(404);
    expect((await send('DELETE', `/api/v1/agents/${agent.id}`)).res.status).toBe(404);
    expect((await me(agentHeader(agent.token))).status).toBe(401);
    const [after] = await db
      .select()
      .from(tasks)
      .where(eq(tasks.id, task?.id ?? ''));
    expect(after?.assigneeAgentId).toBeNull();

    expect(await auditActions(agent.id)).toContain('agent.delete');
    const deleted = (await eventsOf(agent.id)).find((e) => e.type === 'agent.deleted');
    expect(deleted).toMatchObject({ boardId: board.id, agentId: null });
    expect(deleted?.payload).toMatchObject({ agent_id: agent.id, name: 'worker-1' });
  });

  it('refuses updates from read keys (403), other organizations (404) and bad input (422)', async () => {
    const board = await createBoard();
    const agent = await createAgent(board.id);
    const reader = await createKey(['read']);
    expect((await send('PATCH', `/api/v1/agents/${agent.id}`, { name: 'x' }, bearer(reader.secret))).res.status).toBe(
      403,
    );
    const foreign = await send('PATCH', `/api/v1/agents/${agent.id}`, { name: 'x' }, await foreignAdminKey());
    expect(foreign.res.status).toBe(404);
    expect((await send('PATCH', `/api/v1/agents/${crypto.randomUUID()}`, { name: 'x' })).res.status).toBe(404);
    const bad = await send('PATCH', `/api/v1/agents/${agent.id}`, { name: '', is_lead: 'yes', status: 'asleep' });
    expect(bad.res.status).toBe(422);
    const paths = bad.body.error.details.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['name', 'is_lead', 'status']));
    const unchanged = await json(await api(`/api/v1/agents/${agent.id}`, { headers: operatorHeaders() }));
    expect(unchanged).toMatchObject({ name: 'worker-1', status: 'provisioning' });
  });
});
