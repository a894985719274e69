import { SELF } from 'cloudflare:test';
import { and, eq } from 'drizzle-orm';
import { importJWK, type JWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs, memberBoardAccess, organizationMembers, users } from '../../workers/db/schema';
import { appWith, json, operatorHeaders, testEnv } from './helpers';

const env = testEnv as typeof testEnv & { TEST_JWKS_URL: string; TEST_JWT_PRIVATE_KEYS: string };
const api = (path: string, init: RequestInit = {}) => SELF.fetch(`https://mce.test${path}`, init);
const bearer = (secret: string) => ({ Authorization: `Bearer ${secret}` });

/** JWT mode against the stand-in issuer: the way to a second and third operator in these tests. */
const ISSUER = 'https://issuer.boards.test';
const clerk = appWith({ AUTH_MODE: 'clerk', JWKS_URL: env.TEST_JWKS_URL, JWT_ISSUER: ISSUER });
async function session(subject: string): Promise<Record<string, string>> {
  const key = (JSON.parse(env.TEST_JWT_PRIVATE_KEYS) as { RS256: JWK }).RS256;
  const iat = Math.floor(Date.now() / 1000) - 5;
  const jwt = await new SignJWT({ iss: ISSUER, sub: subject, iat, exp: iat + 600 })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid as string })
    .sign(await importJWK(key, 'RS256'));
  return { Authorization: `Bearer ${jwt}` };
}

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

/** A new operator, provisioned by its first request, owning its own Personal organization. */
async function newOperator() {
  const subject = `boards_${crypto.randomUUID()}`;
  const headers = await session(subject);
  expect((await clerk('/api/v1/boards', { headers })).status).toBe(200);
  const [user] = await db.select().from(users).where(eq(users.subject, subject));
  if (!user?.activeOrganizationId) throw new Error('operator not provisioned');
  return { headers, userId: user.id, organizationId: user.activeOrganizationId };
}

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
