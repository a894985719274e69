/**
 * Bootstrap and the operator's own profile. The local operator is shared with every test file:
 * a profile change here is put back at the end. Provisioning on first sight is shown with a fresh
 * JWT operator from the test issuer.
 */
import { env, SELF } from 'cloudflare:test';
import { and, eq } from 'drizzle-orm';
import { importJWK, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs, organizationMembers, users } from '../../workers/db/schema';
import { appWith, json, operatorHeaders, testEnv } from './helpers';

type Body = Record<string, unknown> | undefined;
const local = (path: string, method = 'GET', body?: Body, headers: Record<string, string> = operatorHeaders()) =>
  SELF.fetch(`https://mce.test${path}`, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

let db: Database;
let original: { name: string | null; email: string | null };

beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
  const me = await json(await local('/api/v1/users/me'));
  original = { name: me.name, email: me.email };
});

afterAll(async () => {
  await local('/api/v1/users/me', 'PATCH', original);
});

describe('POST /api/v1/auth/bootstrap', () => {
  it('answers the local operator with their organizations and the active one, and is idempotent', async () => {
    const first = await local('/api/v1/auth/bootstrap', 'POST');
    expect(first.status).toBe(200);
    const a = await json(first);
    expect(a.user).toMatchObject({ subject: 'local', platform_admin: true });
    expect(a.user.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.active_organization_id).toBe(a.user.active_organization_id);
    const active = a.organizations.find((o: { id: string }) => o.id === a.active_organization_id);
    expect(active).toMatchObject({ locked: false });
    expect(['owner', 'admin', 'member']).toContain(active.role);
    expect(
      a.organizations.some((o: { name: string; role: string }) => o.name === 'Personal' && o.role === 'owner'),
    ).toBe(true);

    const b = await json(await local('/api/v1/auth/bootstrap', 'POST'));
    expect(b.user.id).toBe(a.user.id);
    // No second user and no second Personal organization.
    const locals = await db.select().from(users).where(eq(users.subject, 'local'));
    expect(locals).toHaveLength(1);
    const owned = await db
      .select()
      .from(organizationMembers)
      .where(and(eq(organizationMembers.userId, a.user.id), eq(organizationMembers.role, 'owner')));
    expect(owned.length).toBeGreaterThanOrEqual(1);
  });

  it('provisions a new operator on first sight from the JWT claims, with a Personal organization', async () => {
    const issuer = 'https://issuer.users.test';
    const bindings = env as unknown as { TEST_JWKS_URL: string; TEST_JWT_PRIVATE_KEYS: string };
    const jwk = (JSON.parse(bindings.TEST_JWT_PRIVATE_KEYS) as { RS256: JWK }).RS256;
    const subject = `users-test-${crypto.randomUUID()}`;
    const token = await new SignJWT({ email: 'ada@example.test', name: 'Ada' })
      .setProtectedHeader({ alg: 'RS256', kid: jwk.kid })
      .setSubject(subject)
      .setIssuer(issuer)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(await importJWK(jwk, 'RS256'));
    const app = appWith({ AUTH_MODE: 'clerk', JWKS_URL: bindings.TEST_JWKS_URL, JWT_ISSUER: issuer });
    const call = () => app('/api/v1/auth/bootstrap', { method: 'POST', headers: { Authorization: `Bearer ${token}` } });

    const res = await call();
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.user).toMatchObject({ subject, email: 'ada@example.test', name: 'Ada', platform_admin: false });
    expect(body.organizations).toEqual([
      expect.objectContaining({ id: body.active_organization_id, name: 'Personal', role: 'owner', locked: false }),
    ]);
    const [provisioned] = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'user.provision'), eq(auditLogs.targetId, body.user.id)));
    expect(provisioned).toMatchObject({ organizationId: body.active_organization_id, actorId: body.user.id });

    const again = await json(await call());
    expect(again.user.id).toBe(body.user.id);
    expect(again.organizations).toHaveLength(1);
  });

  it('keeps API keys out with 403 and the anonymous out with 401', async () => {
    const created = await local('/api/v1/api-keys', 'POST', { name: 'users-test', scopes: ['admin'] });
    expect(created.status).toBe(201);
    const key = { Authorization: `Bearer ${(await json(created)).secret}` };
    expect((await local('/api/v1/auth/bootstrap', 'POST', undefined, key)).status).toBe(403);
    expect((await local('/api/v1/users/me', 'GET', undefined, key)).status).toBe(403);
    expect((await local('/api/v1/users/me', 'PATCH', { name: 'Key' }, key)).status).toBe(403);
    expect((await local('/api/v1/auth/bootstrap', 'POST', undefined, {})).status).toBe(401);
    expect((await local('/api/v1/users/me', 'GET', undefined, {})).status).toBe(401);
  });
});

describe('/api/v1/users/me', () => {
  it('reads my profile', async () => {
    const res = await local('/api/v1/users/me');
    expect(res.status).toBe(200);
    const me = await json(res);
    expect(me).toMatchObject({ subject: 'local', platform_admin: true });
    expect(Object.keys(me).sort()).toEqual(
      ['active_organization_id', 'created_at', 'email', 'id', 'name', 'platform_admin', 'subject', 'updated_at'].sort(),
    );
  });

  it('changes my name and email, keeps what I did not name, and audits which fields changed', async () => {
    const res = await local('/api/v1/users/me', 'PATCH', { name: '  Grace Hopper ', email: 'grace@example.test' });
    expect(res.status).toBe(200);
    const me = await json(res);
    expect(me).toMatchObject({ name: 'Grace Hopper', email: 'grace@example.test' });
    expect(Date.parse(me.updated_at)).toBeGreaterThanOrEqual(Date.parse(me.created_at));

    const renamed = await json(await local('/api/v1/users/me', 'PATCH', { name: 'G. Hopper' }));
    expect(renamed).toMatchObject({ name: 'G. Hopper', email: 'grace@example.test' });
    expect(await json(await local('/api/v1/users/me'))).toMatchObject({
      name: 'G. Hopper',
      email: 'grace@example.test',
    });

    const cleared = await json(await local('/api/v1/users/me', 'PATCH', { email: null }));
    expect(cleared).toMatchObject({ name: 'G. Hopper', email: null });

    const audits = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.action, 'user.update'), eq(auditLogs.targetId, me.id)));
    const fields = audits.map((a) => (a.details as { fields: string[] }).fields.join(','));
    expect(fields).toEqual(expect.arrayContaining(['email,name', 'name', 'email']));
    expect(audits.every((a) => a.actorType === 'user' && a.actorId === me.id && a.success)).toBe(true);
    // Field names, not personal data.
    expect(JSON.stringify(audits.map((a) => a.details))).not.toContain('grace@example.test');
  });

  it('refuses invalid changes with 422 and changes nothing', async () => {
    const before = await json(await local('/api/v1/users/me'));
    for (const body of [
      {},
      { email: 'not-an-email' },
      { name: '' },
      { name: '   ' },
      { name: 'x'.repeat(101) },
      { email: `${'a'.repeat(250)}@example.test` },
      { name: 42 },
    ]) {
      const res = await local('/api/v1/users/me', 'PATCH', body as Body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect((await json(res)).error.code).toBe('validation_failed');
    }
    const after = await json(await local('/api/v1/users/me'));
    expect(after).toMatchObject({ name: before.name, email: before.email });
  });
});
