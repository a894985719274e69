import { and, eq } from 'drizzle-orm';
import { importJWK, type JWK, SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs, organizationMembers, users } from '../../workers/db/schema';
import { api, appWith, bearer, type Call, freshIp, json, operatorHeaders, testEnv } from './helpers';

const env = testEnv;
const agentMe = (token: string) =>
  api('/api/v1/agent/me', { headers: { 'X-Agent-Token': token, 'CF-Connecting-IP': freshIp() } });

const ISSUER = 'https://issuer.admin.test';
const clerk = appWith({ AUTH_MODE: 'clerk', JWKS_URL: env.TEST_JWKS_URL, JWT_ISSUER: ISSUER });

async function sessionToken(subject: string, iat = Math.floor(Date.now() / 1000) - 5): Promise<string> {
  const key = (JSON.parse(env.TEST_JWT_PRIVATE_KEYS) as { RS256: JWK }).RS256;
  return new SignJWT({ iss: ISSUER, sub: subject, iat, exp: iat + 600 })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid as string })
    .sign(await importJWK(key, 'RS256'));
}

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});
afterEach(() => vi.restoreAllMocks());

/** A new operator (JWT mode), provisioned by its first request as owner of its own organization. */
async function newOperator() {
  const subject = `admin_${crypto.randomUUID()}`;
  const headers = bearer(await sessionToken(subject));
  expect((await clerk('/api/v1/boards', { headers })).status).toBe(200);
  const [user] = await db.select().from(users).where(eq(users.subject, subject));
  if (!user?.activeOrganizationId) throw new Error('operator not provisioned');
  return { subject, headers, userId: user.id, organizationId: user.activeOrganizationId };
}

async function post(call: Call, path: string, headers: Record<string, string>, body?: unknown) {
  const res = await call(path, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes and assert on them.
  return { res, body: (await json(res)) as Record<string, any> };
}

/** A board, an agent on it and an API key in the organization `headers` act in. */
async function equip(call: Call, headers: Record<string, string>, scopes = ['admin']) {
  const board = await post(call, '/api/v1/boards', headers, { name: 'incident board' });
  expect(board.res.status).toBe(201);
  const agent = await post(call, '/api/v1/agents', headers, { board_id: board.body.id, name: 'incident agent' });
  expect(agent.res.status).toBe(201);
  const key = await post(call, '/api/v1/api-keys', headers, { name: 'incident key', scopes });
  expect(key.res.status).toBe(201);
  return {
    boardId: board.body.id as string,
    agent: agent.body as { id: string; token: string },
    key: key.body as { id: string; secret: string },
  };
}

async function auditRow(action: string, targetId: string) {
  const [row] = await db
    .select()
    .from(auditLogs)
    .where(and(eq(auditLogs.action, action), eq(auditLogs.targetId, targetId)));
  return row;
}

describe('POST /api/v1/admin/agents/{id}/revoke-all', () => {
  it("revokes the agent's token at once and audits it; read and write keys get 403", async () => {
    const { agent } = await equip(api, operatorHeaders());
    expect((await agentMe(agent.token)).status).toBe(200);

    for (const scopes of [['read'], ['write']]) {
      const { key } = await equip(api, operatorHeaders(), scopes);
      const refused = await post(api, `/api/v1/admin/agents/${agent.id}/revoke-all`, bearer(key.secret));
      expect(refused.res.status, scopes[0]).toBe(403);
    }
    expect((await agentMe(agent.token)).status).toBe(200);

    const { res, body } = await post(api, `/api/v1/admin/agents/${agent.id}/revoke-all`, operatorHeaders());
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ id: agent.id, has_token: false });
    expect(body.token_revoked_at).not.toBeNull();
    expect((await agentMe(agent.token)).status).toBe(401);
    expect(await auditRow('agent.revoke_all', agent.id)).toMatchObject({ actorType: 'user', success: true });
  });

  it("answers 404 for another organization's agent and leaves it working", async () => {
    const other = await newOperator();
    const { agent } = await equip(clerk, other.headers);
    const { res } = await post(api, `/api/v1/admin/agents/${agent.id}/revoke-all`, operatorHeaders());
    expect(res.status).toBe(404);
    expect(
      (await post(api, `/api/v1/admin/agents/${crypto.randomUUID()}/revoke-all`, operatorHeaders())).res.status,
    ).toBe(404);
    expect((await agentMe(agent.token)).status).toBe(200);
  });
});

describe('POST /api/v1/admin/users/{id}/revoke-all', () => {
  it("ends the user's earlier sessions and revokes the API keys they created, in one audited step", async () => {
    const target = await newOperator();
    const first = await equip(clerk, target.headers);
    const second = await post(clerk, '/api/v1/api-keys', target.headers, { name: 'second', scopes: ['read'] });
    for (const secret of [first.key.secret, second.body.secret]) {
      expect((await api('/api/v1/boards', { headers: bearer(secret) })).status).toBe(200);
    }

    const ip = freshIp();
    const { res, body } = await post(api, `/api/v1/admin/users/${target.userId}/revoke-all`, {
      ...operatorHeaders(),
      'CF-Connecting-IP': ip,
    });
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ user_id: target.userId, api_keys_revoked: 2 });

    for (const secret of [first.key.secret, second.body.secret]) {
      expect((await api('/api/v1/boards', { headers: bearer(secret) })).status).toBe(401);
    }
    expect((await clerk('/api/v1/boards', { headers: target.headers })).status).toBe(401);
    // A session issued after the revocation works again.
    const later = Math.ceil(Date.parse(body.credentials_revoked_at) / 1000) + 1;
    const fresh = bearer(await sessionToken(target.subject, later));
    expect((await clerk('/api/v1/boards', { headers: fresh })).status).toBe(200);
    // Revoke-all is about credentials: the user's agents keep theirs.
    expect((await agentMe(first.agent.token)).status).toBe(200);

    const audit = await auditRow('user.revoke_all', target.userId);
    expect(audit).toMatchObject({ actorType: 'user', ip, success: true });
    expect(audit?.details).toMatchObject({ api_keys_revoked: 2 });
  });

  it('is for platform admins only, and 404 for an unknown user', async () => {
    const target = await newOperator();
    const notAdmin = await newOperator();
    const byOperator = await post(clerk, `/api/v1/admin/users/${target.userId}/revoke-all`, notAdmin.headers);
    expect(byOperator.res.status).toBe(403);
    const { key } = await equip(api, operatorHeaders());
    const byKey = await post(api, `/api/v1/admin/users/${target.userId}/revoke-all`, bearer(key.secret));
    expect(byKey.res.status).toBe(403);
    expect((await clerk('/api/v1/boards', { headers: target.headers })).status).toBe(200);

    const unknown = await post(api, `/api/v1/admin/users/${crypto.randomUUID()}/revoke-all`, operatorHeaders());
    expect(unknown.res.status).toBe(404);
  });

  it('does not end the local operator token, which is rotated by changing LOCAL_AUTH_TOKEN', async () => {
    // What revoke-all records for a user, set directly: revoking the local user through the API
    // would also revoke the API keys other test files are using right now.
    await db.update(users).set({ credentialsRevokedAt: new Date() }).where(eq(users.subject, 'local'));
    expect((await api('/api/v1/boards', { headers: operatorHeaders() })).status).toBe(200);
  });
});

describe('organization lock', () => {
  it("gives the organization's API keys and agents 423 while operators still act, until unlocked", async () => {
    const owner = await newOperator();
    const { agent, key } = await equip(clerk, owner.headers);
    const logs: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => {
      logs.push(String(line));
    });
    const ip = freshIp();
    const lock = await post(clerk, `/api/v1/admin/organizations/${owner.organizationId}/lock`, {
      ...owner.headers,
      'CF-Connecting-IP': ip,
    });
    expect(lock.res.status).toBe(200);
    expect(lock.body).toMatchObject({ id: owner.organizationId, locked: true });
    expect(logs.some((l) => l.includes('"org.locked"') && l.includes(owner.organizationId))).toBe(true);

    const keyRes = await api('/api/v1/boards', { headers: bearer(key.secret) });
    expect(keyRes.status).toBe(423);
    expect((await json(keyRes)).error.code).toBe('organization_locked');
    const agentRes = await agentMe(agent.token);
    expect(agentRes.status).toBe(423);
    expect((await json(agentRes)).error.code).toBe('organization_locked');
    // The responders keep working.
    expect((await clerk('/api/v1/boards', { headers: owner.headers })).status).toBe(200);
    expect((await post(clerk, '/api/v1/boards', owner.headers, { name: 'war room' })).res.status).toBe(201);

    const unlock = await post(clerk, `/api/v1/admin/organizations/${owner.organizationId}/unlock`, {
      ...owner.headers,
      'CF-Connecting-IP': ip,
    });
    expect(unlock.res.status).toBe(200);
    expect(unlock.body).toMatchObject({ locked: false, locked_at: null });
    expect((await api('/api/v1/boards', { headers: bearer(key.secret) })).status).toBe(200);
    expect((await agentMe(agent.token)).status).toBe(200);

    for (const action of ['org.lock', 'org.unlock']) {
      const row = await auditRow(action, owner.organizationId);
      expect(row, action).toMatchObject({
        organizationId: owner.organizationId,
        actorType: 'user',
        actorId: owner.userId,
        ip,
        success: true,
      });
    }
  });

  it('is for owners of that organization: 404 for non-members (platform admins too), 403 otherwise', async () => {
    const owner = await newOperator();
    const lockPath = `/api/v1/admin/organizations/${owner.organizationId}/lock`;
    // The local operator is a platform admin but not a member.
    expect((await post(api, lockPath, operatorHeaders())).res.status).toBe(404);
    expect(
      (await post(api, `/api/v1/admin/organizations/${crypto.randomUUID()}/lock`, operatorHeaders())).res.status,
    ).toBe(404);
    const stranger = await newOperator();
    expect((await post(clerk, lockPath, stranger.headers)).res.status).toBe(404);

    const admin = await newOperator();
    await db
      .insert(organizationMembers)
      .values({ organizationId: owner.organizationId, userId: admin.userId, role: 'admin' });
    expect((await post(clerk, lockPath, admin.headers)).res.status).toBe(403);

    const { key } = await equip(clerk, owner.headers);
    expect((await post(api, lockPath, bearer(key.secret))).res.status).toBe(403);
    // Nothing got locked along the way.
    expect((await api('/api/v1/boards', { headers: bearer(key.secret) })).status).toBe(200);
  });
});
