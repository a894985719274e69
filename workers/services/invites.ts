/**
 * Invites into an organization: a token shown once (stored as SHA-256), an expiry, one use.
 * Accepting claims the invite and creates the membership in one statement, so a token admits
 * one person even when two present it at the same instant.
 */
import { and, desc, eq, sql } from 'drizzle-orm';
import type { Role } from '../auth/principal';
import type { Database } from '../db/client';
import { pgErrorCode, UNIQUE_VIOLATION } from '../db/errors';
import type { Page } from '../db/paging';
import { pageOf } from '../db/paging';
import { fromRow } from '../db/rows';
import { invites } from '../db/schema';
import { randomSecret, sha256Hex } from '../lib/crypto';
import { AppError } from '../lib/errors';
import { type AuditContext, auditRowsFrom, mutateWithAudit } from './audit';
import type { Organization } from './organizations';

export const INVITE_PREFIX = 'mci_';
export const INVITE_ROLES = ['admin', 'member'] as const;
export type InviteRole = (typeof INVITE_ROLES)[number];
export const INVITE_DEFAULT_HOURS = 168;
export const INVITE_MAX_HOURS = 720;

export type Invite = typeof invites.$inferSelect;
export type InviteStatus = 'pending' | 'accepted' | 'revoked' | 'expired';

export function inviteStatus(invite: Invite, now = new Date()): InviteStatus {
  if (invite.acceptedAt) return 'accepted';
  if (invite.revokedAt) return 'revoked';
  return invite.expiresAt.getTime() <= now.getTime() ? 'expired' : 'pending';
}

/** Where the dashboard accepts an invite. The token rides in the fragment, which browsers never send. */
export function acceptPath(token: string): string {
  return `/invites/accept#token=${token}`;
}

export interface NewInvite {
  email: string | null;
  role: InviteRole;
  allBoardsRead: boolean;
  allBoardsWrite: boolean;
  expiresInHours: number;
}

export async function createInvite(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: NewInvite,
): Promise<{ invite: Invite; token: string }> {
  if (!Number.isInteger(input.expiresInHours) || input.expiresInHours < 1 || input.expiresInHours > INVITE_MAX_HOURS) {
    throw new AppError(422, 'validation_failed', `expires_in_hours must be between 1 and ${INVITE_MAX_HOURS}.`, {
      details: { issues: [{ path: 'expires_in_hours', message: `must be between 1 and ${INVITE_MAX_HOURS}` }] },
    });
  }
  const token = randomSecret(INVITE_PREFIX);
  const insert = db
    .insert(invites)
    .values({
      organizationId,
      email: input.email,
      role: input.role,
      allBoardsRead: input.allBoardsRead,
      allBoardsWrite: input.allBoardsWrite,
      tokenHash: await sha256Hex(token),
      invitedBy: ctx.actorType === 'user' ? ctx.actorId : null,
      expiresAt: new Date(Date.now() + input.expiresInHours * 3_600_000),
    })
    .returning();
  const [row] = await mutateWithAudit(
    db,
    ctx,
    {
      action: 'invite.create',
      targetType: 'invite',
      organizationId,
      details: {
        email: input.email,
        role: input.role,
        all_boards_read: input.allBoardsRead,
        all_boards_write: input.allBoardsWrite,
        expires_in_hours: input.expiresInHours,
      },
    },
    insert,
  );
  if (!row) throw new Error('invite insert returned nothing');
  return { invite: fromRow(invites, row), token };
}

export async function listInvites(db: Database, organizationId: string, page: Page) {
  const where = eq(invites.organizationId, organizationId);
  return pageOf(db, invites, where, [desc(invites.createdAt), desc(invites.id)], page);
}

export async function getInvite(db: Database, organizationId: string, id: string): Promise<Invite> {
  const [invite] = await db
    .select()
    .from(invites)
    .where(and(eq(invites.id, id), eq(invites.organizationId, organizationId)));
  if (!invite) throw new AppError(404, 'not_found', 'No such invite.');
  return invite;
}

/**
 * Revokes a pending invite. Revoking a revoked or expired one changes nothing and answers it as
 * it is; an accepted invite cannot be revoked (remove the member instead): 409.
 */
export async function revokeInvite(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  id: string,
): Promise<Invite> {
  const update = db
    .update(invites)
    .set({ revokedAt: new Date() })
    .where(
      and(
        eq(invites.id, id),
        eq(invites.organizationId, organizationId),
        sql`${invites.revokedAt} IS NULL AND ${invites.acceptedAt} IS NULL`,
      ),
    )
    .returning();
  const [row] = await mutateWithAudit(db, ctx, { action: 'invite.revoke', targetType: 'invite' }, update);
  if (row) return fromRow(invites, row);
  const invite = await getInvite(db, organizationId, id);
  if (invite.acceptedAt) {
    throw new AppError(409, 'invite_accepted', 'This invite was already accepted; remove the member instead.');
  }
  return invite;
}

export interface AcceptedInvite {
  inviteId: string;
  memberId: string;
  role: Role;
  organization: Organization;
}

const unusable = () => new AppError(410, 'invite_unusable', 'This invite cannot be used. Ask for a new one.');

/**
 * Accepts an invite for `userId`: claims it (unused, unrevoked, unexpired), creates the
 * membership with the invite's role and board flags, makes the organization the user's active
 * one and writes the audit row, all in one statement. Unknown, expired, revoked and used tokens
 * get the same 410, so the answer tells nothing about which it was.
 */
export async function acceptInvite(
  db: Database,
  ctx: AuditContext,
  userId: string,
  token: string,
): Promise<AcceptedInvite> {
  const hash = await sha256Hex(token);
  let result: { rows: Record<string, unknown>[] };
  try {
    result = await db.execute<Record<string, unknown>>(sql`
      WITH inv AS (
        SELECT i.id,
               (i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()) AS usable,
               EXISTS (SELECT 1 FROM organization_members m
                       WHERE m.organization_id = i.organization_id AND m.user_id = ${userId}::uuid) AS already_member
        FROM invites i WHERE i.token_hash = ${hash}::text
      ), claimed AS (
        UPDATE invites i SET accepted_at = now(), accepted_by = ${userId}::uuid
        WHERE i.token_hash = ${hash}::text
          AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()
          AND NOT EXISTS (SELECT 1 FROM organization_members m
                          WHERE m.organization_id = i.organization_id AND m.user_id = ${userId}::uuid)
        RETURNING i.id, i.organization_id, i.role, i.all_boards_read, i.all_boards_write
      ), joined AS (
        INSERT INTO organization_members (organization_id, user_id, role, all_boards_read, all_boards_write)
        SELECT c.organization_id, ${userId}::uuid, c.role, c.all_boards_read, c.all_boards_write FROM claimed c
        RETURNING id, organization_id, role
      ), activated AS (
        UPDATE users u SET active_organization_id = j.organization_id, updated_at = now()
        FROM joined j WHERE u.id = ${userId}::uuid
      ), audit AS (
        ${auditRowsFrom(ctx, {
          action: 'invite.accept',
          targetType: 'invite',
          organizationId: sql`j.organization_id`,
          targetId: sql`c.id::text`,
          details: sql`jsonb_build_object('member_id', j.id, 'user_id', ${userId}::text, 'role', j.role)`,
          from: sql`claimed c, joined j`,
        })}
      )
      SELECT (SELECT usable FROM inv) AS usable, (SELECT already_member FROM inv) AS already_member,
             c.id AS invite_id, j.id AS member_id, j.role,
             o.id AS org_id, o.name AS org_name, o.locked_at AS org_locked_at,
             o.created_at AS org_created_at, o.updated_at AS org_updated_at
      FROM (SELECT 1) one
      LEFT JOIN joined j ON true
      LEFT JOIN claimed c ON true
      LEFT JOIN organizations o ON o.id = j.organization_id`);
  } catch (err) {
    // Two invites to one organization accepted at once by the same user: the second loses on the
    // membership's unique index, and its invite stays unused.
    if (pgErrorCode(err) === UNIQUE_VIOLATION) throw alreadyMember();
    throw err;
  }
  const row = result.rows[0];
  if (row?.member_id) {
    const date = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string));
    return {
      inviteId: row.invite_id as string,
      memberId: row.member_id as string,
      role: row.role as Role,
      organization: {
        id: row.org_id as string,
        name: row.org_name as string,
        lockedAt: date(row.org_locked_at),
        createdAt: date(row.org_created_at) as Date,
        updatedAt: date(row.org_updated_at) as Date,
      },
    };
  }
  if (row?.usable === true && row.already_member === true) throw alreadyMember();
  throw unusable();
}

const alreadyMember = () => new AppError(409, 'already_member', 'You are already a member of this organization.');
