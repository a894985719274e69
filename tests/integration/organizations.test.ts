/**
 * Organizations, members and invites over HTTP. The local operator is shared by every test file,
 * so most tests act as fresh operators signed in with JWTs from the test issuer (each gets its own
 * Personal organization, so nothing here moves the local operator's active organization, which
 * other files running at the same time rely on). Second users without a login are SQL fixtures.
 */
import { env, SELF } from 'cloudflare:test';
import { and, eq } from 'drizzle-orm';
import { importJWK, type JWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { auditLogs, boards, invites, memberBoardAccess, organizationMembers, users } from '../../workers/db/schema';
import { sha256Hex } from '../../workers/lib/crypto';
import { appWith, json, operatorHeaders, testEnv } from './helpers';

// ---------------------------------------------------------------------------------------------
// Fixtures

let db: Database;
beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

type Body = Record<string, unknown> | undefined;
const request = (headers: Record<string, string>, method: string, body: Body): RequestInit => ({
  method,
  headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
  body: body === undefined ? undefined : JSON.stringify(body),
});

/** The local operator, through the real Worker. */
const _local = (path: string, method = 'GET', body?: Body) =>
  SELF.fetch(`https://mce.test${path}`, request(operatorHeaders(), method, body));

const ISSUER = 'https://issuer.organizations.test';
const bindings = env as unknown as { TEST_JWKS_URL: string; TEST_JWT_PRIVATE_KEYS: string };
const jwtApp = appWith({ AUTH_MODE: 'clerk', JWKS_URL: bindings.TEST_JWKS_URL, JWT_ISSUER: ISSUER });

interface Operator {
  userId: string;
  personalOrgId: string;
  call(path: string, method?: string, body?: Body): Promise<Response>;
}

/** A new operator (JWT session), provisioned by bootstrap with a Personal organization it owns. */
async function operator(label: string): Promise<Operator> {
  const jwk = (JSON.parse(bindings.TEST_JWT_PRIVATE_KEYS) as { ES256: JWK }).ES256;
  const token = await new SignJWT({ email: `${label}@example.test`, name: label })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
    .setSubject(`org-test-${label}-${crypto.randomUUID()}`)
    .setIssuer(ISSUER)
    .setIssuedAt()
    .setExpirationTime('15m')
    .sign(await importJWK(jwk, 'ES256'));
  const call = async (path: string, method = 'GET', body?: Body) =>
    jwtApp(path, request({ Authorization: `Bearer ${token}` }, method, body));
  const res = await call('/api/v1/auth/bootstrap', 'POST');
  expect(res.status).toBe(200);
  const boot = await json(res);
  return { userId: boot.user.id, personalOrgId: boot.active_organization_id, call };
}

/** A user who never signs in, made directly in the database. */
async function sqlUser(label: string): Promise<string> {
  const id = crypto.randomUUID();
  await db.insert(users).values({ id, subject: `sql-${label}-${id}`, name: label, email: `${label}@example.test` });
  return id;
}

async function sqlMember(organizationId: string, userId: string, role: 'owner' | 'admin' | 'member') {
  const [m] = await db.insert(organizationMembers).values({ organizationId, userId, role }).returning();
  return m?.id as string;
}

async function sqlBoard(organizationId: string, name = 'Board'): Promise<string> {
  const [b] = await db.insert(boards).values({ organizationId, name }).returning();
  return b?.id as string;
}

const auditRows = (action: string, targetId: string) =>
  db
    .select()
    .from(auditLogs)
    .where(and(eq(auditLogs.action, action), eq(auditLogs.targetId, targetId)));

/** An operator who owns `orgName` (active) and has a second operator in it with `role`, joined by invite. */
async function teamWith(role: 'admin' | 'member') {
  const owner = await operator('owner');
  const org = await json(await owner.call('/api/v1/organizations', 'POST', { name: 'Team' }));
  expect((await owner.call('/api/v1/organizations/me/active', 'PATCH', { organization_id: org.id })).status).toBe(200);
  const other = await operator(role);
  const invite = await json(await owner.call('/api/v1/organizations/me/invites', 'POST', { role }));
  const accepted = await other.call('/api/v1/organizations/invites/accept', 'POST', { token: invite.token });
  expect(accepted.status).toBe(200);
  const members = (await json(await owner.call('/api/v1/organizations/me/members'))).items as {
    id: string;
    user_id: string;
  }[];
  const memberId = (userId: string) => members.find((m) => m.user_id === userId)?.id as string;
  return {
    owner,
    other,
    orgId: org.id as string,
    ownerMemberId: memberId(owner.userId),
    otherMemberId: memberId(other.userId),
  };
}

async function apiKeyOf(op: Operator): Promise<string> {
  const res = await op.call('/api/v1/api-keys', 'POST', { name: 'automation', scopes: ['admin'] });
  expect(res.status).toBe(201);
  return (await json(res)).secret;
}

// ---------------------------------------------------------------------------------------------

describe('organizations', () => {
  it('creates an organization whose creator is owner with access to every board, and audits it', async () => {
    const op = await operator('creator');
    const res = await op.call('/api/v1/organizations', 'POST', { name: '  Acme Ops  ' });
    expect(res.status).toBe(201);
    const org = await json(res);
    expect(org).toMatchObject({ name: 'Acme Ops', role: 'owner', locked: false, locked_at: null });

    const list = await json(await op.call('/api/v1/organizations'));
    expect(list.total).toBe(2);
    expect(list.items.map((o: { id: string; role: string }) => [o.id, o.role])).toEqual([
      [op.personalOrgId, 'owner'],
      [org.id, 'owner'],
    ]);

    const [membership] = await db
      .select()
      .from(organizationMembers)
      .where(and(eq(organizationMembers.organizationId, org.id), eq(organizationMembers.userId, op.userId)));
    expect(membership).toMatchObject({ role: 'owner', allBoardsRead: true, allBoardsWrite: true });

    const [audit] = await auditRows('org.create', org.id);
    expect(audit).toMatchObject({ organizationId: org.id, actorType: 'user', actorId: op.userId, success: true });

    // Creating does not move the creator: their Personal organization stays active.
    expect((await json(await op.call('/api/v1/organizations/me'))).id).toBe(op.personalOrgId);
  });

  it('refuses a blank or over-long name with 422', async () => {
    const op = await operator('namer');
    for (const name of ['   ', 'x'.repeat(101)]) {
      const res = await op.call('/api/v1/organizations', 'POST', { name });
      expect(res.status).toBe(422);
      expect((await json(res)).error.code).toBe('validation_failed');
    }
  });

  it('answers the active organization with my role', async () => {
    const op = await operator('reader');
    const res = await op.call('/api/v1/organizations/me');
    expect(res.status).toBe(200);
    const org = await json(res);
    expect(org).toMatchObject({ id: op.personalOrgId, name: 'Personal', role: 'owner', locked: false });
    expect(typeof org.created_at).toBe('string');
  });

  it('switches the active organization and audits it; an organization I am not in is 404', async () => {
    const op = await operator('switcher');
    const stranger = await operator('stranger');
    const org = await json(await op.call('/api/v1/organizations', 'POST', { name: 'Second' }));

    const res = await op.call('/api/v1/organizations/me/active', 'PATCH', { organization_id: org.id });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: org.id, role: 'owner' });
    expect((await json(await op.call('/api/v1/organizations/me'))).id).toBe(org.id);
    const [audit] = await auditRows('org.switch', org.id);
    expect(audit).toMatchObject({ actorId: op.userId, organizationId: org.id });

    // Someone else's organization and one that does not exist answer alike.
    const theirs = await op.call('/api/v1/organizations/me/active', 'PATCH', {
      organization_id: stranger.personalOrgId,
    });
    const nowhere = await op.call('/api/v1/organizations/me/active', 'PATCH', { organization_id: crypto.randomUUID() });
    expect(theirs.status).toBe(404);
    expect(nowhere.status).toBe(404);
    expect((await json(theirs)).error.message).toBe((await json(nowhere)).error.message);
    expect((await json(await op.call('/api/v1/organizations/me'))).id).toBe(org.id);

    expect((await op.call('/api/v1/organizations/me/active', 'PATCH', { organization_id: 'nope' })).status).toBe(422);
  });

  it('keeps API keys out of every operator route with 403', async () => {
    const op = await operator('keyholder');
    const key = await apiKeyOf(op);
    const asKey = (path: string, method = 'GET', body?: Body) =>
      SELF.fetch(`https://mce.test${path}`, request({ Authorization: `Bearer ${key}` }, method, body));
    const calls: [string, string, Body][] = [
      ['/api/v1/organizations', 'GET', undefined],
      ['/api/v1/organizations', 'POST', { name: 'By key' }],
      ['/api/v1/organizations/me', 'GET', undefined],
      ['/api/v1/organizations/me/active', 'PATCH', { organization_id: op.personalOrgId }],
      ['/api/v1/organizations/me/members', 'GET', undefined],
      ['/api/v1/organizations/me/invites', 'GET', undefined],
      ['/api/v1/organizations/me/invites', 'POST', { role: 'member' }],
      ['/api/v1/organizations/invites/accept', 'POST', { token: 'mci_whatever' }],
    ];
    for (const [path, method, body] of calls) {
      const res = await asKey(path, method, body);
      expect(res.status, `${method} ${path}`).toBe(403);
    }
  });

  it('answers 401 without credentials', async () => {
    const res = await SELF.fetch('https://mce.test/api/v1/organizations');
    expect(res.status).toBe(401);
  });
});

describe('members', () => {
  it('lists members with user, role, all-boards flags and per-board access', async () => {
    const { owner, other, orgId } = await teamWith('member');
    // A third member, made in the database, with access to one board.
    const thirdUser = await sqlUser('third');
    const thirdMember = await sqlMember(orgId, thirdUser, 'member');
    const board = await sqlBoard(orgId);
    await db.insert(memberBoardAccess).values({ memberId: thirdMember, boardId: board, canRead: true, canWrite: true });

    const res = await owner.call('/api/v1/organizations/me/members');
    expect(res.status).toBe(200);
    const list = await json(res);
    expect(list).toMatchObject({ total: 3, limit: 50, offset: 0 });
    const byUser = Object.fromEntries(list.items.map((m: { user_id: string }) => [m.user_id, m]));
    expect(byUser[owner.userId]).toMatchObject({
      role: 'owner',
      name: 'owner',
      email: 'owner@example.test',
      all_boards_read: true,
      all_boards_write: true,
      boards: [],
    });
    expect(byUser[other.userId]).toMatchObject({ role: 'member', all_boards_read: false, all_boards_write: false });
    expect(byUser[thirdUser]).toMatchObject({
      id: thirdMember,
      role: 'member',
      name: 'third',
      boards: [{ board_id: board, can_read: true, can_write: true }],
    });

    // Plain members see the list too.
    expect((await other.call('/api/v1/organizations/me/members')).status).toBe(200);
  });

  it("changes a member's role and board access, replacing the per-board list, and audits it", async () => {
    const { owner, orgId, otherMemberId } = await teamWith('member');
    const [b1, b2] = [await sqlBoard(orgId, 'one'), await sqlBoard(orgId, 'two')];
    const path = `/api/v1/organizations/me/members/${otherMemberId}`;

    let res = await owner.call(path, 'PATCH', {
      role: 'admin',
      all_boards_read: true,
      boards: [{ board_id: b1, can_write: true }, { board_id: b2 }],
    });
    expect(res.status).toBe(200);
    const updated = await json(res);
    expect(updated).toMatchObject({ id: otherMemberId, role: 'admin', all_boards_read: true, all_boards_write: false });
    expect(updated.boards).toEqual(
      [
        { board_id: b1, can_read: true, can_write: true },
        { board_id: b2, can_read: true, can_write: false },
      ].sort((a, b) => a.board_id.localeCompare(b.board_id)),
    );

    // A second change replaces the list; fields not named keep their values.
    res = await owner.call(path, 'PATCH', { boards: [{ board_id: b2, can_read: true, can_write: true }] });
    expect(await json(res)).toMatchObject({
      role: 'admin',
      all_boards_read: true,
      boards: [{ board_id: b2, can_read: true, can_write: true }],
    });
    res = await owner.call(path, 'PATCH', { boards: [] });
    expect((await json(res)).boards).toEqual([]);

    const audits = await auditRows('member.update', otherMemberId);
    expect(audits).toHaveLength(3);
    expect(audits.every((a) => a.organizationId === orgId && a.actorId === owner.userId)).toBe(true);
    expect(audits.map((a) => (a.details as { role?: string }).role)).toContain('admin');
  });

  it('refuses boards outside the organization, duplicates and empty changes with 422', async () => {
    const { owner, orgId, otherMemberId } = await teamWith('member');
    const stranger = await operator('stranger');
    const theirBoard = await sqlBoard(stranger.personalOrgId);
    const mine = await sqlBoard(orgId);
    const path = `/api/v1/organizations/me/members/${otherMemberId}`;

    for (const body of [
      { boards: [{ board_id: theirBoard }] },
      { boards: [{ board_id: crypto.randomUUID() }] },
      { boards: [{ board_id: mine }, { board_id: mine }] },
      { boards: [{ board_id: 'not-a-uuid' }] },
      { role: 'superuser' },
      {},
    ]) {
      const res = await owner.call(path, 'PATCH', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
    }
    // Nothing changed on a refusal.
    const [m] = await db.select().from(organizationMembers).where(eq(organizationMembers.id, otherMemberId));
    expect(m?.role).toBe('member');
  });

  it('needs admin to change members; only owners grant or touch the owner role', async () => {
    const { owner, other: admin, orgId, ownerMemberId, otherMemberId: adminMemberId } = await teamWith('admin');
    const plainUser = await sqlUser('plain');
    const plainMemberId = await sqlMember(orgId, plainUser, 'member');

    // A member may not change anyone.
    const member = await operator('member');
    const invite = await json(await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'member' }));
    await member.call('/api/v1/organizations/invites/accept', 'POST', { token: invite.token });
    const refused = await member.call(`/api/v1/organizations/me/members/${plainMemberId}`, 'PATCH', { role: 'admin' });
    expect(refused.status).toBe(403);

    // An admin changes members, but cannot grant owner nor change an owner.
    const ok = await admin.call(`/api/v1/organizations/me/members/${plainMemberId}`, 'PATCH', {
      all_boards_read: true,
    });
    expect(ok.status).toBe(200);
    const grant = await admin.call(`/api/v1/organizations/me/members/${plainMemberId}`, 'PATCH', { role: 'owner' });
    expect(grant.status).toBe(403);
    const selfPromote = await admin.call(`/api/v1/organizations/me/members/${adminMemberId}`, 'PATCH', {
      role: 'owner',
    });
    expect(selfPromote.status).toBe(403);
    const demoteOwner = await admin.call(`/api/v1/organizations/me/members/${ownerMemberId}`, 'PATCH', {
      role: 'member',
    });
    expect(demoteOwner.status).toBe(403);
    const [o] = await db.select().from(organizationMembers).where(eq(organizationMembers.id, ownerMemberId));
    expect(o?.role).toBe('owner');

    // The owner may grant owner.
    const promoted = await owner.call(`/api/v1/organizations/me/members/${plainMemberId}`, 'PATCH', { role: 'owner' });
    expect(promoted.status).toBe(200);
    expect((await json(promoted)).role).toBe('owner');
  });

  it('keeps the last owner: demoting them is 409 last_owner until someone else is owner', async () => {
    const { owner, ownerMemberId, otherMemberId } = await teamWith('admin');
    const path = `/api/v1/organizations/me/members/${ownerMemberId}`;

    const refused = await owner.call(path, 'PATCH', { role: 'admin' });
    expect(refused.status).toBe(409);
    expect((await json(refused)).error.code).toBe('last_owner');
    // Changing only the last owner's board flags is fine.
    expect((await owner.call(path, 'PATCH', { all_boards_write: true })).status).toBe(200);

    expect(
      (await owner.call(`/api/v1/organizations/me/members/${otherMemberId}`, 'PATCH', { role: 'owner' })).status,
    ).toBe(200);
    const demoted = await owner.call(path, 'PATCH', { role: 'admin' });
    expect(demoted.status).toBe(200);
    expect((await json(demoted)).role).toBe('admin');
  });

  it('keeps one owner when two owners step down at the same instant', async () => {
    const { owner, other, orgId, ownerMemberId, otherMemberId } = await teamWith('admin');
    await owner.call(`/api/v1/organizations/me/members/${otherMemberId}`, 'PATCH', { role: 'owner' });
    const owners = async () =>
      (await db.select().from(organizationMembers).where(eq(organizationMembers.organizationId, orgId))).filter(
        (m) => m.role === 'owner',
      );
    expect(await owners()).toHaveLength(2);

    const demotions = await Promise.all([
      owner.call(`/api/v1/organizations/me/members/${ownerMemberId}`, 'PATCH', { role: 'admin' }),
      other.call(`/api/v1/organizations/me/members/${otherMemberId}`, 'PATCH', { role: 'admin' }),
    ]);
    expect(demotions.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(await owners()).toHaveLength(1);
  });

  it('answers 404 for a member id of another organization, on change and removal', async () => {
    const { owner } = await teamWith('member');
    const stranger = await teamWith('member');
    for (const method of ['PATCH', 'DELETE']) {
      const res = await owner.call(
        `/api/v1/organizations/me/members/${stranger.otherMemberId}`,
        method,
        method === 'PATCH' ? { role: 'admin' } : undefined,
      );
      expect(res.status, method).toBe(404);
    }
    const [m] = await db.select().from(organizationMembers).where(eq(organizationMembers.id, stranger.otherMemberId));
    expect(m?.role).toBe('member');
  });

  it('removes a member (admin), audits it, and refuses members and admins removing owners', async () => {
    const { owner, other: admin, orgId, ownerMemberId } = await teamWith('admin');
    const victimUser = await sqlUser('victim');
    const victim = await sqlMember(orgId, victimUser, 'member');

    const member = await operator('member');
    const invite = await json(await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'member' }));
    await member.call('/api/v1/organizations/invites/accept', 'POST', { token: invite.token });
    expect((await member.call(`/api/v1/organizations/me/members/${victim}`, 'DELETE')).status).toBe(403);
    expect((await admin.call(`/api/v1/organizations/me/members/${ownerMemberId}`, 'DELETE')).status).toBe(403);

    const res = await admin.call(`/api/v1/organizations/me/members/${victim}`, 'DELETE');
    expect(res.status).toBe(204);
    const members = await json(await owner.call('/api/v1/organizations/me/members'));
    expect(members.items.map((m: { id: string }) => m.id)).not.toContain(victim);
    const [audit] = await auditRows('member.remove', victim);
    expect(audit).toMatchObject({ organizationId: orgId, actorId: admin.userId });
    expect(audit?.details).toMatchObject({ user_id: victimUser, role: 'member' });

    // Gone is gone: a second removal is 404.
    expect((await admin.call(`/api/v1/organizations/me/members/${victim}`, 'DELETE')).status).toBe(404);
  });

  it('lets a member leave; they land in another organization of theirs; the last owner cannot leave', async () => {
    const { owner, other, orgId, ownerMemberId, otherMemberId } = await teamWith('member');
    expect((await json(await other.call('/api/v1/organizations/me'))).id).toBe(orgId);

    const left = await other.call(`/api/v1/organizations/me/members/${otherMemberId}`, 'DELETE');
    expect(left.status).toBe(204);
    expect((await json(await other.call('/api/v1/organizations/me'))).id).toBe(other.personalOrgId);
    const [audit] = await auditRows('member.leave', otherMemberId);
    expect(audit).toMatchObject({ organizationId: orgId, actorId: other.userId });

    const stuck = await owner.call(`/api/v1/organizations/me/members/${ownerMemberId}`, 'DELETE');
    expect(stuck.status).toBe(409);
    expect((await json(stuck)).error.code).toBe('last_owner');
  });

  it('an owner among several can leave, and owners remove owners', async () => {
    const { owner, other, ownerMemberId, otherMemberId } = await teamWith('admin');
    await owner.call(`/api/v1/organizations/me/members/${otherMemberId}`, 'PATCH', { role: 'owner' });
    // Two owners: one removes the other, then the last one stays.
    expect((await other.call(`/api/v1/organizations/me/members/${ownerMemberId}`, 'DELETE')).status).toBe(204);
    const last = await other.call(`/api/v1/organizations/me/members/${otherMemberId}`, 'DELETE');
    expect(last.status).toBe(409);
    // The removed owner no longer has an active organization there: back to Personal.
    expect((await json(await owner.call('/api/v1/organizations/me'))).id).toBe(owner.personalOrgId);
  });
});

describe('invites', () => {
  it('creates an invite whose token is shown once and stored only as a hash, and audits it', async () => {
    const owner = await operator('inviter');
    const res = await owner.call('/api/v1/organizations/me/invites', 'POST', {
      email: 'new@example.test',
      role: 'admin',
      all_boards_read: true,
    });
    expect(res.status).toBe(201);
    const invite = await json(res);
    expect(invite.token).toMatch(/^mci_[A-Za-z0-9_-]{43}$/);
    expect(invite.accept_path).toContain(invite.token);
    expect(invite).toMatchObject({
      email: 'new@example.test',
      role: 'admin',
      all_boards_read: true,
      all_boards_write: false,
      status: 'pending',
      invited_by: owner.userId,
    });
    const hours = (Date.parse(invite.expires_at) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(167.9);
    expect(hours).toBeLessThanOrEqual(168);

    const [row] = await db.select().from(invites).where(eq(invites.id, invite.id));
    expect(row?.tokenHash).toBe(await sha256Hex(invite.token));
    expect(JSON.stringify(row)).not.toContain(invite.token);

    const [audit] = await auditRows('invite.create', invite.id);
    expect(audit).toMatchObject({ organizationId: owner.personalOrgId, actorId: owner.userId });
    expect(JSON.stringify(audit)).not.toContain(invite.token);
  });

  it('lists invites without any secret: no token, no hash, no API key', async () => {
    const owner = await operator('lister');
    const key = await apiKeyOf(owner);
    const invite = await json(
      await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'member', expires_in_hours: 2 }),
    );
    const res = await owner.call('/api/v1/organizations/me/invites');
    expect(res.status).toBe(200);
    const text = await res.text();
    const list = JSON.parse(text);
    expect(list).toMatchObject({ total: 1, limit: 50, offset: 0 });
    expect(list.items[0]).toMatchObject({ id: invite.id, status: 'pending', role: 'member' });
    expect(Object.keys(list.items[0])).not.toContain('token');
    expect(text).not.toContain(invite.token);
    expect(text).not.toContain(await sha256Hex(invite.token));
    expect(text).not.toContain(key);

    const members = await (await owner.call('/api/v1/organizations/me/members')).text();
    expect(members).not.toContain(invite.token);
    expect(members).not.toContain(key);
  });

  it('refuses bad invite input with 422 and plain members with 403', async () => {
    const { other: member } = await teamWith('member');
    const owner = await operator('strict');
    for (const body of [
      { role: 'owner' },
      { role: 'member', expires_in_hours: 721 },
      { role: 'member', expires_in_hours: 0 },
      { role: 'member', email: 'not-an-email' },
      {},
    ]) {
      expect((await owner.call('/api/v1/organizations/me/invites', 'POST', body)).status, JSON.stringify(body)).toBe(
        422,
      );
    }
    expect(
      (await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'member', expires_in_hours: 720 })).status,
    ).toBe(201);

    expect((await member.call('/api/v1/organizations/me/invites', 'POST', { role: 'member' })).status).toBe(403);
    expect((await member.call('/api/v1/organizations/me/invites')).status).toBe(403);
  });

  it('accepting joins with the invite role and flags, makes the organization active, and audits it', async () => {
    const owner = await operator('host');
    const guest = await operator('guest');
    const invite = await json(
      await owner.call('/api/v1/organizations/me/invites', 'POST', {
        role: 'admin',
        all_boards_read: true,
        all_boards_write: true,
      }),
    );
    const res = await guest.call('/api/v1/organizations/invites/accept', 'POST', { token: invite.token });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({
      active_organization_id: owner.personalOrgId,
      organization: { id: owner.personalOrgId, name: 'Personal', role: 'admin' },
    });

    expect(await json(await guest.call('/api/v1/organizations/me'))).toMatchObject({
      id: owner.personalOrgId,
      role: 'admin',
    });
    const members = await json(await owner.call('/api/v1/organizations/me/members'));
    expect(members.items.find((m: { user_id: string }) => m.user_id === guest.userId)).toMatchObject({
      id: body.member_id,
      role: 'admin',
      all_boards_read: true,
      all_boards_write: true,
    });
    const list = await json(await owner.call('/api/v1/organizations/me/invites'));
    expect(list.items[0]).toMatchObject({ id: invite.id, status: 'accepted', accepted_by: guest.userId });

    const [audit] = await auditRows('invite.accept', invite.id);
    expect(audit).toMatchObject({ organizationId: owner.personalOrgId, actorId: guest.userId });
    expect(audit?.details).toMatchObject({ member_id: body.member_id, role: 'admin' });
  });

  it('answers used, revoked, expired and unknown tokens with one 410', async () => {
    const owner = await operator('host');
    const mint = async () => json(await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'member' }));
    const [used, revoked, expired] = [await mint(), await mint(), await mint()];

    const first = await operator('first');
    expect((await first.call('/api/v1/organizations/invites/accept', 'POST', { token: used.token })).status).toBe(200);

    const revokeRes = await owner.call(`/api/v1/organizations/me/invites/${revoked.id}`, 'DELETE');
    expect(revokeRes.status).toBe(200);
    expect(await json(revokeRes)).toMatchObject({ status: 'revoked' });
    const [revokeAudit] = await auditRows('invite.revoke', revoked.id);
    expect(revokeAudit).toMatchObject({ organizationId: owner.personalOrgId, actorId: owner.userId });

    await db
      .update(invites)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(invites.id, expired.id));

    const late = await operator('late');
    const answers = [];
    for (const token of [used.token, revoked.token, expired.token, `mci_${'A'.repeat(43)}`]) {
      const res = await late.call('/api/v1/organizations/invites/accept', 'POST', { token });
      expect(res.status).toBe(410);
      answers.push((await json(res)).error);
    }
    expect(new Set(answers.map((e) => JSON.stringify(e))).size).toBe(1);
    expect(answers[0].code).toBe('invite_unusable');
    // None of them let `late` in.
    expect((await json(await late.call('/api/v1/organizations'))).total).toBe(1);
    // And each refusal is in the audit log as a failed request.
    const failed = await db
      .select()
      .from(auditLogs)
      .where(and(eq(auditLogs.actorId, late.userId), eq(auditLogs.action, 'request.failed')));
    expect(failed).toHaveLength(4);
  });

  it('answers 409 to someone already a member, and leaves the invite usable', async () => {
    const { owner, other } = await teamWith('member');
    const invite = await json(await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'admin' }));
    const res = await other.call('/api/v1/organizations/invites/accept', 'POST', { token: invite.token });
    expect(res.status).toBe(409);
    expect((await json(res)).error.code).toBe('already_member');
    const newcomer = await operator('newcomer');
    expect((await newcomer.call('/api/v1/organizations/invites/accept', 'POST', { token: invite.token })).status).toBe(
      200,
    );
  });

  it('admits exactly one of two people presenting the same token at once', async () => {
    const owner = await operator('host');
    const invite = await json(await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'member' }));
    const [a, b] = [await operator('racer-a'), await operator('racer-b')];
    const results = await Promise.all(
      [a, b].map((op) => op.call('/api/v1/organizations/invites/accept', 'POST', { token: invite.token })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 410]);
    const members = await json(await owner.call('/api/v1/organizations/me/members'));
    expect(members.total).toBe(2);
  });

  it('revokes idempotently; an accepted invite is 409; another organization’s invite is 404', async () => {
    const owner = await operator('host');
    const stranger = await operator('stranger');
    const pending = await json(await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'member' }));
    const taken = await json(await owner.call('/api/v1/organizations/me/invites', 'POST', { role: 'member' }));
    const guest = await operator('guest');
    await guest.call('/api/v1/organizations/invites/accept', 'POST', { token: taken.token });

    const first = await json(await owner.call(`/api/v1/organizations/me/invites/${pending.id}`, 'DELETE'));
    const again = await owner.call(`/api/v1/organizations/me/invites/${pending.id}`, 'DELETE');
    expect(again.status).toBe(200);
    expect((await json(again)).revoked_at).toBe(first.revoked_at);
    expect(await auditRows('invite.revoke', pending.id)).toHaveLength(1);

    const accepted = await owner.call(`/api/v1/organizations/me/invites/${taken.id}`, 'DELETE');
    expect(accepted.status).toBe(409);

    const foreign = await stranger.call(`/api/v1/organizations/me/invites/${taken.id}`, 'DELETE');
    expect(foreign.status).toBe(404);
  });
});
