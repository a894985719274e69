/**
 * Organizations and their members: create, switch, list, change roles and board access, remove.
 * Every rule concurrency could break (the last owner, who may touch an owner) is a condition of
 * the one statement that makes the change, and that statement writes the audit row too.
 */
import { and, asc, count, eq, sql } from 'drizzle-orm';
import type { Membership, Role } from '../auth/principal';
import type { Database } from '../db/client';
import type { Page } from '../db/paging';
import { parseJson } from '../db/rows';
import { organizationMembers, organizations, users } from '../db/schema';
import { AppError } from '../lib/errors';
import { type AuditContext, auditRowsFrom } from './audit';

export type Organization = typeof organizations.$inferSelect;

export interface OrganizationWithRole {
  organization: Organization;
  role: Role;
}

export interface BoardAccess {
  board_id: string;
  can_read: boolean;
  can_write: boolean;
}

export interface Member {
  id: string;
  userId: string;
  name: string | null;
  email: string | null;
  role: Role;
  allBoardsRead: boolean;
  allBoardsWrite: boolean;
  boards: BoardAccess[];
  createdAt: Date;
}

// ---------------------------------------------------------------------------------------------
// Organizations

const withRole = { organization: organizations, role: organizationMembers.role };

export async function listOrganizationsOf(
  db: Database,
  userId: string,
  page: Page,
): Promise<{ items: OrganizationWithRole[]; total: number }> {
  const where = eq(organizationMembers.userId, userId);
  const [rows, [total]] = await db.batch([
    db
      .select(withRole)
      .from(organizationMembers)
      .innerJoin(organizations, eq(organizations.id, organizationMembers.organizationId))
      .where(where)
      .orderBy(asc(organizations.createdAt), asc(organizations.id))
      .limit(page.limit)
      .offset(page.offset),
    db.select({ value: count() }).from(organizationMembers).where(where),
  ]);
  return { items: rows.map((r) => ({ organization: r.organization, role: r.role as Role })), total: total?.value ?? 0 };
}

/** The active organization of a member (the membership comes from the request's principal). */
export async function getActiveOrganization(db: Database, membership: Membership): Promise<OrganizationWithRole> {
  const [org] = await db.select().from(organizations).where(eq(organizations.id, membership.organizationId));
  // The membership was read this request; the organization vanishing since is a plain 404.
  if (!org) throw new AppError(404, 'not_found', 'No such organization.');
  return { organization: org, role: membership.role };
}

/**
 * Creates an organization with its creator as owner (all boards, read and write) and the audit
 * row, in one statement. It becomes the creator's active organization only if they have no usable
 * one (a user removed from their last organization), so creating never moves anyone elsewhere.
 */
export async function createOrganization(
  db: Database,
  ctx: AuditContext,
  userId: string,
  name: string,
): Promise<{ organization: Organization; activated: boolean }> {
  const orgId = crypto.randomUUID();
  const result = await db.execute<Record<string, unknown>>(sql`
    WITH o AS (
      INSERT INTO organizations (id, name) VALUES (${orgId}::uuid, ${name}::text) RETURNING *
    ), m AS (
      INSERT INTO organization_members (organization_id, user_id, role, all_boards_read, all_boards_write)
      SELECT o.id, ${userId}::uuid, 'owner', true, true FROM o RETURNING id
    ), act AS (
      UPDATE users u SET active_organization_id = o.id, updated_at = now()
      FROM o
      WHERE u.id = ${userId}::uuid
        AND NOT EXISTS (SELECT 1 FROM organization_members x
                        WHERE x.user_id = u.id AND x.organization_id = u.active_organization_id)
      RETURNING u.id
    ), audit AS (
      ${auditRowsFrom(ctx, {
        action: 'org.create',
        targetType: 'organization',
        organizationId: sql`o.id`,
        targetId: sql`o.id::text`,
        details: sql`jsonb_build_object('name', o.name, 'member_id', m.id)`,
        from: sql`o, m`,
      })}
    )
    SELECT o.*, EXISTS (SELECT 1 FROM act) AS activated FROM o`);
  const row = result.rows[0];
  if (!row) throw new Error('organization insert returned nothing');
  return { organization: fromOrgRow(row), activated: row.activated === true };
}

/** Makes `organizationId` the user's active organization; 404 unless they are a member of it. */
export async function switchActiveOrganization(
  db: Database,
  ctx: AuditContext,
  userId: string,
  organizationId: string,
): Promise<OrganizationWithRole> {
  const result = await db.execute<Record<string, unknown>>(sql`
    WITH m AS (
      SELECT id, role FROM organization_members
      WHERE user_id = ${userId}::uuid AND organization_id = ${organizationId}::uuid
    ), u AS (
      UPDATE users SET active_organization_id = ${organizationId}::uuid, updated_at = now()
      WHERE id = ${userId}::uuid AND EXISTS (SELECT 1 FROM m)
      RETURNING id
    ), audit AS (
      ${auditRowsFrom(ctx, {
        action: 'org.switch',
        targetType: 'organization',
        organizationId: sql`${organizationId}::uuid`,
        targetId: sql`${organizationId}::text`,
        details: sql`jsonb_build_object('previous_organization_id', ${ctx.organizationId}::text)`,
        from: sql`u`,
      })}
    )
    SELECT o.*, m.role AS member_role FROM u, m, organizations o WHERE o.id = ${organizationId}::uuid`);
  const row = result.rows[0];
  if (!row) throw organizationNotFound();
  return { organization: fromOrgRow(row), role: row.member_role as Role };
}

function fromOrgRow(row: Record<string, unknown>): Organization {
  const date = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string));
  return {
    id: row.id as string,
    name: row.name as string,
    lockedAt: date(row.locked_at),
    createdAt: date(row.created_at) as Date,
    updatedAt: date(row.updated_at) as Date,
  };
}

const organizationNotFound = () => new AppError(404, 'not_found', 'No such organization.');

// ---------------------------------------------------------------------------------------------
// Members

const boardAccessJson = sql<BoardAccess[]>`coalesce((
  SELECT json_agg(json_build_object('board_id', a.board_id, 'can_read', a.can_read, 'can_write', a.can_write)
                  ORDER BY a.board_id)
  FROM member_board_access a WHERE a.member_id = ${organizationMembers.id}), '[]'::json)`;

const memberFields = {
  member: organizationMembers,
  name: users.name,
  email: users.email,
  boards: boardAccessJson,
};

type MemberRow = { member: typeof organizationMembers.$inferSelect; name: string | null; email: string | null };

function toMember(row: MemberRow & { boards: unknown }): Member {
  const boards = parseJson<BoardAccess[]>(row.boards);
  return {
    id: row.member.id,
    userId: row.member.userId,
    name: row.name,
    email: row.email,
    role: row.member.role as Role,
    allBoardsRead: row.member.allBoardsRead,
    allBoardsWrite: row.member.allBoardsWrite,
    boards: boards ?? [],
    createdAt: row.member.createdAt,
  };
}

export async function listMembers(
  db: Database,
  organizationId: string,
  page: Page,
): Promise<{ items: Member[]; total: number }> {
  const where = eq(organizationMembers.organizationId, organizationId);
  const [rows, [total]] = await db.batch([
    db
      .select(memberFields)
      .from(organizationMembers)
      .innerJoin(users, eq(users.id, organizationMembers.userId))
      .where(where)
      .orderBy(asc(organizationMembers.createdAt), asc(organizationMembers.id))
      .limit(page.limit)
      .offset(page.offset),
    db.select({ value: count() }).from(organizationMembers).where(where),
  ]);
  return { items: rows.map(toMember), total: total?.value ?? 0 };
}

export async function getMember(db: Database, organizationId: string, memberId: string): Promise<Member> {
  const [row] = await db
    .select(memberFields)
    .from(organizationMembers)
    .innerJoin(users, eq(users.id, organizationMembers.userId))
    .where(and(eq(organizationMembers.id, memberId), eq(organizationMembers.organizationId, organizationId)));
  if (!row) throw memberNotFound();
  return toMember(row);
}

export interface MemberPatch {
  role?: Role;
  allBoardsRead?: boolean;
  allBoardsWrite?: boolean;
  /** Replaces the member's per-board list when given. */
  boards?: BoardAccess[];
}

/**
 * Changes a member's role and board access. The caller is an admin or owner (the route checks);
 * here, in the statement itself: only an owner may touch an owner or grant the owner role, the
 * last owner keeps the role, and every per-board entry names a board of this organization.
 * The owners are locked (FOR UPDATE) so two concurrent demotions cannot both pass the count.
 */
export async function updateMember(
  db: Database,
  ctx: AuditContext,
  actor: Membership,
  memberId: string,
  patch: MemberPatch,
): Promise<Member> {
  const org = actor.organizationId;
  const actorIsOwner = actor.role === 'owner';
  const replaceBoards = patch.boards !== undefined;
  const entries = JSON.stringify(patch.boards ?? []);
  const newRole = sql`coalesce(${patch.role ?? null}::text, m.role)`;
  const details = JSON.stringify({
    role: patch.role,
    all_boards_read: patch.allBoardsRead,
    all_boards_write: patch.allBoardsWrite,
    boards: patch.boards,
  });
  const result = await db.execute<{
    updated_id: string | null;
    target_role: string | null;
    bad_boards: number;
  }>(sql`
    WITH owners AS (
      SELECT id FROM organization_members WHERE organization_id = ${org}::uuid AND role = 'owner' FOR UPDATE
    ), target AS (
      SELECT id, role FROM organization_members WHERE id = ${memberId}::uuid AND organization_id = ${org}::uuid
    ), entries AS (
      SELECT e.board_id, e.can_read, e.can_write
      FROM jsonb_to_recordset(${entries}::jsonb) AS e(board_id uuid, can_read boolean, can_write boolean)
    ), bad AS (
      SELECT e.board_id FROM entries e
      WHERE NOT EXISTS (SELECT 1 FROM boards b WHERE b.id = e.board_id AND b.organization_id = ${org}::uuid)
    ), updated AS (
      UPDATE organization_members m SET
        role = ${newRole},
        all_boards_read = coalesce(${patch.allBoardsRead ?? null}::boolean, m.all_boards_read),
        all_boards_write = coalesce(${patch.allBoardsWrite ?? null}::boolean, m.all_boards_write),
        updated_at = now()
      WHERE m.id = ${memberId}::uuid AND m.organization_id = ${org}::uuid
        AND NOT EXISTS (SELECT 1 FROM bad)
        AND (${actorIsOwner}::boolean OR (m.role <> 'owner' AND ${newRole} <> 'owner'))
        AND NOT (m.role = 'owner' AND ${newRole} <> 'owner' AND (SELECT count(*) FROM owners) <= 1)
      RETURNING m.id, m.user_id, m.role
    ), removed AS (
      DELETE FROM member_board_access a USING updated u
      WHERE a.member_id = u.id AND ${replaceBoards}::boolean
        AND a.board_id NOT IN (SELECT board_id FROM entries)
    ), upserted AS (
      INSERT INTO member_board_access (member_id, board_id, can_read, can_write)
      SELECT u.id, e.board_id, coalesce(e.can_read, true), coalesce(e.can_write, false) FROM updated u, entries e
      ON CONFLICT (member_id, board_id) DO UPDATE SET can_read = excluded.can_read, can_write = excluded.can_write
    ), audit AS (
      ${auditRowsFrom(ctx, {
        action: 'member.update',
        targetType: 'member',
        organizationId: sql`${org}::uuid`,
        targetId: sql`u.id::text`,
        details: sql`jsonb_strip_nulls(${details}::jsonb) || jsonb_build_object('user_id', u.user_id, 'previous_role', t.role)`,
        from: sql`updated u, target t`,
      })}
    )
    SELECT (SELECT id FROM updated) AS updated_id,
           (SELECT role FROM target) AS target_role,
           (SELECT count(*) FROM bad)::int AS bad_boards`);
  const outcome = result.rows[0];
  if (!outcome?.updated_id) {
    if (!outcome?.target_role) throw memberNotFound();
    if (Number(outcome.bad_boards) > 0) {
      throw new AppError(422, 'validation_failed', 'Every board must belong to this organization.', {
        details: { issues: [{ path: 'boards', message: 'names a board that does not exist in this organization' }] },
      });
    }
    if (!actorIsOwner && (outcome.target_role === 'owner' || patch.role === 'owner')) throw onlyOwners();
    throw lastOwner();
  }
  return getMember(db, org, memberId);
}

/**
 * Removes a member: an admin or owner removes others (owners only by owners), anyone may remove
 * themselves (leave). The last owner stays. A removed user whose active organization this was
 * moves to another of theirs (or none), in the same statement.
 */
export async function removeMember(
  db: Database,
  ctx: AuditContext,
  actor: { userId: string; membership: Membership },
  memberId: string,
): Promise<{ userId: string }> {
  const org = actor.membership.organizationId;
  const actorIsOwner = actor.membership.role === 'owner';
  const actorIsAdmin = actorIsOwner || actor.membership.role === 'admin';
  const result = await db.execute<{
    removed_id: string | null;
    target_user: string | null;
    target_role: string | null;
  }>(
    sql`
    WITH owners AS (
      SELECT id FROM organization_members WHERE organization_id = ${org}::uuid AND role = 'owner' FOR UPDATE
    ), target AS (
      SELECT id, user_id, role FROM organization_members WHERE id = ${memberId}::uuid AND organization_id = ${org}::uuid
    ), deleted AS (
      DELETE FROM organization_members m
      WHERE m.id = ${memberId}::uuid AND m.organization_id = ${org}::uuid
        AND (m.user_id = ${actor.userId}::uuid OR (${actorIsAdmin}::boolean AND (m.role <> 'owner' OR ${actorIsOwner}::boolean)))
        AND NOT (m.role = 'owner' AND (SELECT count(*) FROM owners) <= 1)
      RETURNING m.id, m.user_id, m.role
    ), moved AS (
      UPDATE users u SET updated_at = now(), active_organization_id = (
        SELECT x.organization_id FROM organization_members x
        WHERE x.user_id = u.id AND x.organization_id <> ${org}::uuid
        ORDER BY x.created_at, x.id LIMIT 1)
      FROM deleted d
      WHERE u.id = d.user_id AND u.active_organization_id = ${org}::uuid
    ), audit AS (
      ${auditRowsFrom(ctx, {
        action: sql`CASE WHEN d.user_id = ${actor.userId}::uuid THEN 'member.leave' ELSE 'member.remove' END`,
        targetType: 'member',
        organizationId: sql`${org}::uuid`,
        targetId: sql`d.id::text`,
        details: sql`jsonb_build_object('user_id', d.user_id, 'role', d.role)`,
        from: sql`deleted d`,
      })}
    )
    SELECT (SELECT id FROM deleted) AS removed_id,
           (SELECT user_id FROM target) AS target_user,
           (SELECT role FROM target) AS target_role`,
  );
  const outcome = result.rows[0];
  if (outcome?.removed_id && outcome.target_user) return { userId: outcome.target_user };
  if (!outcome?.target_role) throw memberNotFound();
  const self = outcome.target_user === actor.userId;
  if (!self && !actorIsAdmin) throw new AppError(403, 'forbidden', 'This needs the admin role.');
  if (!self && outcome.target_role === 'owner' && !actorIsOwner) throw onlyOwners();
  throw lastOwner();
}

const memberNotFound = () => new AppError(404, 'not_found', 'No such member.');
const onlyOwners = () => new AppError(403, 'forbidden', 'Only an owner can grant, change or remove the owner role.');
const lastOwner = () =>
  new AppError(409, 'last_owner', 'An organization keeps at least one owner: make someone else owner first.');
