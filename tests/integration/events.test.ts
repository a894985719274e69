/**
 * Live events: tickets, the WebSocket upgrade's checks, delivery from the organization's hub,
 * replay after a reconnect, board filters, and sockets closed when credentials go away.
 * Organization-wide incidents (lock, user revoke-all) act on JWT-mode operators who own their own
 * organization, never on the shared local operator that other test files use at the same time.
 */
import { evictDurableObject, SELF } from 'cloudflare:test';
import { sql } from 'drizzle-orm';
import { importJWK, type JWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { sha256Hex } from '../../workers/lib/crypto';
import { ACTIVITY_COLUMNS, type ActivityEvent, toActivityEvent } from '../../workers/services/activity';
import { publishEvents } from '../../workers/services/events';
import { appWith, bearer, type Call, json, operatorHeaders, testEnv } from './helpers';

const BASE = 'https://mce.test';
const env = testEnv;
type Headers = Record<string, string>;
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes and assert on them.
type Json = Record<string, any>;

const api: Call = (path, init = {}) => SELF.fetch(`${BASE}${path}`, init);

async function post(path: string, body?: unknown, headers: Headers = operatorHeaders(), call: Call = api) {
  const res = await call(path, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { res, body: (await json(res)) as Json };
}

const ISSUER = 'https://issuer.events.test';
const clerk: Call = appWith({ AUTH_MODE: 'clerk', JWKS_URL: env.TEST_JWKS_URL, JWT_ISSUER: ISSUER });

/** A JWT-mode operator, provisioned by its first request as owner of its own organization. */
async function newOperator() {
  const key = (JSON.parse(env.TEST_JWT_PRIVATE_KEYS) as { RS256: JWK }).RS256;
  const iat = Math.floor(Date.now() / 1000) - 5;
  const token = await new SignJWT({ iss: ISSUER, sub: `events_${crypto.randomUUID()}`, iat, exp: iat + 600 })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid as string })
    .sign(await importJWK(key, 'RS256'));
  const headers = bearer(token);
  const board = await post('/api/v1/boards', { name: 'incident board' }, headers, clerk);
  expect(board.res.status).toBe(201);
  const me = await clerk('/api/v1/users/me', { headers });
  return {
    headers,
    userId: (await json(me)).id as string,
    organizationId: board.body.organization_id as string,
    boardId: board.body.id as string,
  };
}

let db: Database;
let organizationId: string;
let boardA: string;
let boardB: string;

beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
  const a = await post('/api/v1/boards', { name: 'events A' });
  const b = await post('/api/v1/boards', { name: 'events B' });
  expect(a.res.status).toBe(201);
  [organizationId, boardA, boardB] = [a.body.organization_id, a.body.id, b.body.id];
});

/**
 * Real activity rows written by SQL, as a domain change's statement writes them, mapped with the
 * same wire columns: exact control over boards and counts. The agent-API test below goes through
 * a real change instead.
 */
async function activity(boardId: string | null, count = 1, org = organizationId): Promise<ActivityEvent[]> {
  const result = await db.execute(sql`
    INSERT INTO activity_events (organization_id, board_id, type, message, actor_type, payload)
    SELECT ${org}::uuid, ${boardId}::uuid, 'task.status_changed', 'moved #' || i, 'user', jsonb_build_object('n', i)
    FROM generate_series(1, ${count}::int) AS i
    RETURNING ${ACTIVITY_COLUMNS}`);
  return result.rows.map(toActivityEvent).sort((x, y) => x.id - y.id);
}

async function ticket(body: Json = {}, headers: Headers = operatorHeaders(), call: Call = api): Promise<string> {
  const { res, body: out } = await post('/api/v1/events/ticket', body, headers, call);
  expect(res.status, JSON.stringify(out)).toBe(201);
  return out.ticket;
}

const upgrade = (query: string, headers: Headers = {}) =>
  api(`/api/v1/events?${query}`, { headers: { Upgrade: 'websocket', ...headers } });

/** A connected WebSocket client that records every message and its close. */
class Subscriber {
  readonly messages: Json[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;

  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.accept();
    ws.addEventListener('message', (e) => {
      this.messages.push(typeof e.data === 'string' && e.data !== 'pong' ? JSON.parse(e.data) : { raw: e.data });
    });
    this.closed = new Promise((resolve) => ws.addEventListener('close', (e) => resolve(e)));
  }

  get eventIds(): number[] {
    return this.messages.filter((m) => m.type === 'event').map((m) => m.event.id);
  }

  send(text: string) {
    this.#ws.send(text);
  }

  close() {
    this.#ws.close(1000, 'bye');
  }

  /** Waits until `done(messages)` holds (5 s at most). */
  async until(done: (messages: Json[]) => boolean): Promise<Json[]> {
    const deadline = Date.now() + 5_000;
    while (!done(this.messages)) {
      if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(this.messages)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.messages;
  }

  ready() {
    return this.until((m) => m.some((x) => x.type === 'ready'));
  }

  hasEvent(id: number) {
    return this.until(() => this.eventIds.includes(id));
  }
}

async function subscribe(query: Json = {}, headers: Headers = operatorHeaders()): Promise<Subscriber> {
  const t = await ticket(query.board_id ? { board_id: query.board_id } : {}, headers);
  const params = new URLSearchParams({ ticket: t });
  if (query.after_id !== undefined) params.set('after_id', String(query.after_id));
  const res = await upgrade(params.toString());
  expect(res.status).toBe(101);
  if (!res.webSocket) throw new Error('no WebSocket');
  const subscriber = new Subscriber(res.webSocket);
  await subscriber.ready();
  return subscriber;
}

describe('POST /api/v1/events/ticket', () => {
  it('mints a short-lived ticket and records who asked for it', async () => {
    const { res, body } = await post('/api/v1/events/ticket', { board_id: boardA });
    expect(res.status).toBe(201);
    expect(body.ticket).toMatch(/^mcet_[\w-]{43}$/);
    const ttl = new Date(body.expires_at).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(20_000);
    expect(ttl).toBeLessThanOrEqual(31_000);
    const stored = await db.execute<{ board_id: string; principal_type: string }>(
      sql`SELECT board_id, principal_type FROM event_tickets WHERE ticket_hash = ${await sha256Hex(body.ticket)}`,
    );
    expect(stored.rows).toEqual([{ board_id: boardA, principal_type: 'user' }]);
    const audit = await db.execute(
      sql`SELECT 1 FROM audit_logs WHERE action = 'events.ticket_issued' AND target_id = ${boardA}`,
    );
    expect(audit.rows.length).toBeGreaterThan(0);
  });

  it('answers 404 for a board the caller cannot see, and 422 for a malformed one', async () => {
    expect((await post('/api/v1/events/ticket', { board_id: crypto.randomUUID() })).res.status).toBe(404);
    const foreign = await newOperator();
    expect((await post('/api/v1/events/ticket', { board_id: foreign.boardId })).res.status).toBe(404);
    const bad = await post('/api/v1/events/ticket', { board_id: 'nope' });
    expect(bad.res.status).toBe(422);
    expect(JSON.stringify(bad.body)).toContain('board_id');
  });

  it('serves API keys with the read scope and refuses callers without a credential', async () => {
    const key = await post('/api/v1/api-keys', { name: 'events reader', scopes: ['read'] });
    expect(await ticket({}, bearer(key.body.secret))).toMatch(/^mcet_/);
    expect((await post('/api/v1/events/ticket', {}, {})).res.status).toBe(401);
  });

  it('works without a body (organization-wide)', async () => {
    const res = await api('/api/v1/events/ticket', { method: 'POST', headers: operatorHeaders() });
    expect(res.status).toBe(201);
  });
});

describe('GET /api/v1/events (upgrade)', () => {
  it('answers 426 to a plain request', async () => {
    const res = await api(`/api/v1/events?ticket=${await ticket()}`);
    expect(res.status).toBe(426);
    expect((await json(res)).error.code).toBe('upgrade_required');
  });

  it('accepts a ticket once: a second use, an expired, a missing or a made-up ticket get 401', async () => {
    const once = await ticket();
    const first = await upgrade(`ticket=${once}`);
    expect(first.status).toBe(101);
    first.webSocket?.accept();
    first.webSocket?.close();
    expect((await upgrade(`ticket=${once}`)).status).toBe(401);

    const expired = await ticket();
    await db.execute(
      sql`UPDATE event_tickets SET expires_at = now() - interval '1 second' WHERE ticket_hash = ${await sha256Hex(expired)}`,
    );
    expect((await upgrade(`ticket=${expired}`)).status).toBe(401);
    const missing = await upgrade('');
    expect(missing.status).toBe(401);
    expect((await json(missing)).error.code).toBe('unauthenticated');
    expect((await upgrade('ticket=mcet_madeup')).status).toBe(401);
  });

  it('lets only one of two simultaneous upgrades use a ticket', async () => {
    const t = await ticket();
    const results = await Promise.all([upgrade(`ticket=${t}`), upgrade(`ticket=${t}`)]);
    expect(results.map((r) => r.status).sort()).toEqual([101, 401]);
    for (const r of results) {
      r.webSocket?.accept();
      r.webSocket?.close();
    }
  });

  it('needs no Authorization header, but refuses a board other than the ticket’s', async () => {
    const forA = await ticket({ board_id: boardA });
    expect((await upgrade(`ticket=${forA}&board_id=${boardB}`)).status).toBe(401);
    // The refusal did not use the ticket up.
    const ok = await upgrade(`ticket=${forA}&board_id=${boardA}`);
    expect(ok.status).toBe(101);
    ok.webSocket?.accept();
    ok.webSocket?.close();
  });

  it('refuses a ticket whose API key was revoked after it was minted', async () => {
    const key = await post('/api/v1/api-keys', { name: 'soon revoked', scopes: ['read'] });
    const t = await ticket({}, bearer(key.body.secret));
    expect((await post(`/api/v1/api-keys/${key.body.id}/revoke`)).res.status).toBe(200);
    expect((await upgrade(`ticket=${t}`)).status).toBe(401);
  });

  it('refuses another site’s Origin (403) and accepts its own', async () => {
    const foreign = await upgrade(`ticket=${await ticket()}`, { Origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect((await json(foreign)).error.code).toBe('origin_not_allowed');
    const own = await upgrade(`ticket=${await ticket()}`, { Origin: BASE });
    expect(own.status).toBe(101);
    own.webSocket?.accept();
    own.webSocket?.close();
  });

  it('accepts an origin listed in CORS_ORIGINS', async () => {
    const withCors = appWith({ CORS_ORIGINS: 'https://ops.example.com' });
    const headers = { Upgrade: 'websocket', Origin: 'https://ops.example.com' };
    const listed = await withCors(`/api/v1/events?ticket=${await ticket()}`, { headers });
    expect(listed.status).toBe(101);
    listed.webSocket?.accept();
    listed.webSocket?.close();
    const other = await withCors(`/api/v1/events?ticket=${await ticket()}`, {
      headers: { ...headers, Origin: 'https://other.example.com' },
    });
    expect(other.status).toBe(403);
  });

  it('validates board_id and after_id (422)', async () => {
    expect((await upgrade(`ticket=${await ticket()}&board_id=x`)).status).toBe(422);
    expect((await upgrade(`ticket=${await ticket()}&after_id=-1`)).status).toBe(422);
  });
});

describe('delivery', () => {
  it('pushes an event published by publishEvents to a board subscriber, in the documented shape', async () => {
    const subscriber = await subscribe({ board_id: boardA });
    const [{ id }] = (
      await db.execute<{ id: string }>(sql`SELECT nextval(pg_get_serial_sequence('activity_events', 'id')) AS id`)
    ).rows as [{ id: string }];
    const event: ActivityEvent = {
      id: Number(id),
      organization_id: organizationId,
      board_id: boardA,
      task_id: crypto.randomUUID(),
      agent_id: null,
      type: 'task.status_changed',
      message: 'Task moved to review',
      actor_type: 'agent',
      actor_id: crypto.randomUUID(),
      payload: { from: 'in_progress', to: 'review' },
      created_at: new Date().toISOString(),
    };
    await publishEvents(testEnv, organizationId, [event]);
    await subscriber.hasEvent(event.id);
    expect(subscriber.messages.find((m) => m.type === 'event')).toEqual({ type: 'event', event });
    subscriber.close();
  });

  it('delivers a committed activity row (written by SQL, published after commit)', async () => {
    const subscriber = await subscribe({ board_id: boardA });
    const [row] = await activity(boardA);
    if (!row) throw new Error('no row');
    await publishEvents(testEnv, organizationId, [row]);
    await subscriber.hasEvent(row.id);
    const got = subscriber.messages.find((m) => m.event?.id === row.id)?.event;
    expect(got).toMatchObject({ id: row.id, board_id: boardA, type: 'task.status_changed', payload: { n: 1 } });
    subscriber.close();
  });

  it('ignores a duplicate publish of the same id', async () => {
    const subscriber = await subscribe({ board_id: boardA });
    const [first, second] = await activity(boardA, 2);
    if (!first || !second) throw new Error('no rows');
    await publishEvents(testEnv, organizationId, [first]);
    await publishEvents(testEnv, organizationId, [first, second]);
    await subscriber.hasEvent(second.id);
    expect(subscriber.eventIds).toEqual([first.id, second.id]);
    subscriber.close();
  });

  it('keeps board subscribers to their board; organization-wide subscribers get every board', async () => {
    const onA = await subscribe({ board_id: boardA });
    const onB = await subscribe({ board_id: boardB });
    const everywhere = await subscribe();
    const [b] = await activity(boardB);
    const [a] = await activity(boardA);
    const [orgLevel] = await activity(null);
    if (!a || !b || !orgLevel) throw new Error('no rows');
    await publishEvents(testEnv, organizationId, [b]);
    await publishEvents(testEnv, organizationId, [a]);
    await publishEvents(testEnv, organizationId, [orgLevel]);
    await everywhere.hasEvent(orgLevel.id);
    await onA.hasEvent(a.id);
    await onB.hasEvent(b.id);
    // The hub handles publishes in order: had B's event been sent to A, it would be here by now.
    expect(onA.eventIds).toEqual([a.id]);
    expect(onB.eventIds).toEqual([b.id]);
    expect(everywhere.eventIds).toEqual([b.id, a.id, orgLevel.id]);
    for (const s of [onA, onB, everywhere]) s.close();
  });

  it('replays exactly the missed events after a reconnect with after_id, then says ready', async () => {
    const events = await activity(boardA, 5);
    const ids = events.map((e) => e.id);
    const first = await subscribe({ board_id: boardA });
    await publishEvents(testEnv, organizationId, events.slice(0, 2));
    await first.hasEvent(ids[1] ?? 0);
    first.close();
    await first.closed;
    // Missed while away, plus another board's event the board subscriber must not see.
    await publishEvents(testEnv, organizationId, [...events.slice(2), ...(await activity(boardB))]);

    const again = await subscribe({ board_id: boardA, after_id: ids[1] });
    expect(again.messages.map((m) => m.type)).toEqual(['event', 'event', 'event', 'ready']);
    expect(again.eventIds).toEqual(ids.slice(2));
    expect(again.messages.at(-1)?.last_id).toBeGreaterThanOrEqual(ids[4] ?? 0);
    again.close();
  });

  it('answers ping with pong without a round trip to the event stream', async () => {
    const subscriber = await subscribe();
    subscriber.send('ping');
    await subscriber.until((m) => m.some((x) => x.raw === 'pong'));
    subscriber.close();
  });
});

describe('end to end through the agent API', () => {
  it('pushes a task change an agent makes, and a reconnect with the last id gets exactly the missed ones', async () => {
    const board = await post('/api/v1/boards', { name: 'events e2e' });
    const lead = await post('/api/v1/agents', { board_id: board.body.id, name: 'lead', is_lead: true });
    expect(lead.res.status).toBe(201);
    const agent = { 'X-Agent-Token': lead.body.token as string };
    const dashboard = await subscribe({ board_id: board.body.id });
    const watcher = await subscribe({ board_id: board.body.id });

    const created = await post('/api/v1/agent/tasks', { title: 'Ship live events' }, agent);
    expect(created.res.status).toBe(201);
    const taskId = created.body.id as string;
    await dashboard.until((m) => m.some((x) => x.event?.task_id === taskId));
    const first = dashboard.messages.find((m) => m.type === 'event')?.event;
    expect(first).toMatchObject({
      type: 'task.created',
      board_id: board.body.id,
      task_id: taskId,
      actor_type: 'agent',
    });
    const lastSeen = dashboard.eventIds.at(-1) ?? 0;
    dashboard.close();
    await dashboard.closed;

    // Changes while the dashboard is away; the watcher shows when the hub has them all.
    for (const body of ['first note', 'second note']) {
      expect((await post(`/api/v1/agent/tasks/${taskId}/comments`, { body }, agent)).res.status).toBe(201);
    }
    await watcher.until(() => watcher.eventIds.length === 3);
    const missed = watcher.eventIds.filter((id) => id > lastSeen);
    expect(missed).toHaveLength(2);

    const back = await subscribe({ board_id: board.body.id, after_id: lastSeen });
    expect(back.eventIds).toEqual(missed);
    expect(back.messages.filter((m) => m.type === 'event').map((m) => m.event.type)).toEqual([
      'task.comment_created',
      'task.comment_created',
    ]);
    expect(back.messages.at(-1)).toMatchObject({ type: 'ready' });
    for (const s of [back, watcher]) s.close();
  });
});

describe('buffer', () => {
  it('keeps its buffer and its hibernated subscribers across an eviction', async () => {
    const subscriber = await subscribe({ board_id: boardA });
    const [before, after] = await activity(boardA, 2);
    if (!before || !after) throw new Error('no rows');
    await publishEvents(testEnv, organizationId, [before]);
    await subscriber.hasEvent(before.id);
    await evictDurableObject(testEnv.EVENT_HUB.get(testEnv.EVENT_HUB.idFromName(organizationId)));
    await publishEvents(testEnv, organizationId, [after]);
    await subscriber.hasEvent(after.id);
    subscriber.close();

    const again = await subscribe({ board_id: boardA, after_id: before.id - 1 });
    expect(again.eventIds).toEqual([before.id, after.id]);
    again.close();
  });

  it('asks a client whose last id fell out of the 1,000-event buffer to resync from the activity feed', async () => {
    const owner = await newOperator();
    const events = await activity(owner.boardId, 1_005, owner.organizationId);
    await publishEvents(testEnv, owner.organizationId, events);
    const oldest = events[0]?.id ?? 0;
    const t = await ticket({}, owner.headers, clerk);
    const res = await upgrade(`ticket=${t}&after_id=${oldest}`);
    expect(res.status).toBe(101);
    if (!res.webSocket) throw new Error('no WebSocket');
    const late = new Subscriber(res.webSocket);
    await late.ready();
    expect(late.messages).toEqual([
      { type: 'resync', after_id: oldest },
      { type: 'ready', last_id: events.at(-1)?.id },
    ]);
    late.close();

    // Still inside the buffer: a plain replay.
    const t2 = await ticket({}, owner.headers, clerk);
    const inside = new Subscriber((await upgrade(`ticket=${t2}&after_id=${events.at(-3)?.id}`)).webSocket as WebSocket);
    await inside.ready();
    expect(inside.eventIds).toEqual(events.slice(-2).map((e) => e.id));
    inside.close();
  });
});

describe('closing sockets when access ends', () => {
  it("closes a revoked API key's sockets (4401) and leaves others open", async () => {
    const key = await post('/api/v1/api-keys', { name: 'dashboard key', scopes: ['read'] });
    const byKey = await subscribe({}, bearer(key.body.secret));
    const byOperator = await subscribe({ board_id: boardA });
    expect((await post(`/api/v1/api-keys/${key.body.id}/revoke`)).res.status).toBe(200);
    expect(await byKey.closed).toMatchObject({ code: 4401 });

    const [event] = await activity(boardA);
    if (!event) throw new Error('no row');
    await publishEvents(testEnv, organizationId, [event]);
    await byOperator.hasEvent(event.id);
    byOperator.close();
  });

  it('closes every socket of a locked organization (4423)', async () => {
    const owner = await newOperator();
    const key = await post('/api/v1/api-keys', { name: 'wall screen', scopes: ['read'] }, owner.headers, clerk);
    const t1 = await ticket({}, bearer(key.body.secret));
    const t2 = await ticket({ board_id: owner.boardId }, owner.headers, clerk);
    const sockets = await Promise.all(
      [t1, t2].map(async (t) => {
        const s = new Subscriber((await upgrade(`ticket=${t}`)).webSocket as WebSocket);
        await s.ready();
        return s;
      }),
    );
    const lock = await post(
      `/api/v1/admin/organizations/${owner.organizationId}/lock`,
      undefined,
      owner.headers,
      clerk,
    );
    expect(lock.res.status).toBe(200);
    for (const s of sockets) expect(await s.closed).toMatchObject({ code: 4423 });
  });

  it("closes a user's sockets on revoke-all (4401)", async () => {
    const target = await newOperator();
    const t = await ticket({ board_id: target.boardId }, target.headers, clerk);
    const subscriber = new Subscriber((await upgrade(`ticket=${t}`)).webSocket as WebSocket);
    await subscriber.ready();
    // The local operator is a platform admin.
    expect((await post(`/api/v1/admin/users/${target.userId}/revoke-all`)).res.status).toBe(200);
    expect(await subscriber.closed).toMatchObject({ code: 4401 });
  });

  it("closes a member's sockets when the member is removed (4401)", async () => {
    const owner = await newOperator();
    const member = await newOperator();
    const [membership] = (
      await db.execute<{ id: string }>(
        sql`INSERT INTO organization_members (organization_id, user_id, role, all_boards_read)
            VALUES (${owner.organizationId}, ${member.userId}, 'member', true) RETURNING id`,
      )
    ).rows;
    const switched = await clerk('/api/v1/organizations/me/active', {
      method: 'PATCH',
      headers: { ...member.headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ organization_id: owner.organizationId }),
    });
    expect(switched.status).toBe(200);
    const t = await ticket({ board_id: owner.boardId }, member.headers, clerk);
    const subscriber = new Subscriber((await upgrade(`ticket=${t}`)).webSocket as WebSocket);
    await subscriber.ready();
    const removed = await clerk(`/api/v1/organizations/me/members/${membership?.id}`, {
      method: 'DELETE',
      headers: owner.headers,
    });
    expect(removed.status).toBe(204);
    expect(await subscriber.closed).toMatchObject({ code: 4401 });
  });
});
