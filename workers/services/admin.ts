/**
 * Incident responses: revoke every credential of a user or agent, lock an organization. Each is
 * one atomic statement with its audit row.
 */
import { env } from 'cloudflare:workers';
import { and, eq, exists, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { fromRow } from '../db/rows';
import { organizationMembers, organizations } from '../db/schema';
import { AppError } from '../lib/errors';
import { log } from '../lib/log';
import { type Agent, revokeAgentToken } from './agents';
import { type AuditContext, auditRowsFrom, mutateWithAudit } from './audit';
import { closeLiveSockets } from './events';
import { refreshSessions } from './gateway-sessions';
import { gatewayIds } from './gateways';

export type Organization = typeof organizations.$inferSelect;

export interface UserRevocation {
  userId: string;
  credentialsRevokedAt: Date;
  apiKeysRevoked: number;
}

/**
 * Ends every JWT session issued up to now (`credentials_revoked_at`) and revokes every API key
 * the user created, in whichever organization, with one audit row giving the counts.
 */
export async function revokeAllForUser(db: Database, ctx: AuditContext, userId: string): Promise<UserRevocation> {
  const result = await db.execute<{ id: string; revoked_epoch: number; api_keys_revoked: number }>(sql`
    WITH u AS (
      UPDATE users SET credentials_revoked_at = now(), updated_at = now()
      WHERE id = ${userId} RETURNING id, credentials_revoked_at
    ), k AS (
      UPDATE api_keys SET revoked_at = now()
      WHERE created_by IN (SELECT id FROM u) AND revoked_at IS NULL
      RETURNING id
    ), audit AS (
      ${auditRowsFrom(ctx, {
        action: 'user.revoke_all',
        targetType: 'user',
        organizationId: sql`${ctx.organizationId}::uuid`,
        targetId: sql`u.id::text`,
        details: sql`jsonb_build_object('api_keys_revoked', (SELECT count(*) FROM k), 'sessions_issued_before', u.credentials_revoked_at)`,
        from: sql`u`,
      })}
    )
    SELECT u.id, extract(epoch FROM u.credentials_revoked_at)::float8 AS revoked_epoch, (SELECT count(*) FROM k)::int AS api_keys_revoked FROM u`);
  const row = result.rows[0];
  if (!row) throw new AppError(404, 'not_found', 'No such user.');
  return {
    userId: row.id,
    credentialsRevokedAt: new Date(Number(row.revoked_epoch) * 1000),
    apiKeysRevoked: Number(row.api_keys_revoked),
  };
}

/** The agent's token stops working at once; the agent itself stays (a new token can be minted). */
export function revokeAllForAgent(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  agentId: string,
): Promise<Agent> {
  return revokeAgentToken(db, ctx, organizationId, agentId, 'agent.revoke_all');
}

/**
 * Locks or unlocks `organizationId` when `userId` owns it. The ownership check is part of the
 * update; when nothing changed, a read only picks the answer: 404 for a non-member (whatever
 * their platform role), 403 for a member who is not the owner.
 */
export async function setOrganizationLock(
  db: Database,
  ctx: AuditContext,
  userId: string,
  organizationId: string,
  locked: boolean,
): Promise<Organization> {
  const callerIsOwner = exists(
    db
      .select({ one: sql`1` })
      .from(organizationMembers)
      .where(
        and(
          eq(organizationMembers.organizationId, organizationId),
          eq(organizationMembers.userId, userId),
          eq(organizationMembers.role, 'owner'),
        ),
      ),
  );
  const update = db
    .update(organizations)
    .set({
      // Locking a locked organization keeps the time of the first lock.
      lockedAt: locked ? sql`coalesce(${organizations.lockedAt}, now())` : null,
      updatedAt: sql`now()`,
    })
    .where(and(eq(organizations.id, organizationId), callerIsOwner))
    .returning();
  const [row] = await mutateWithAudit(
    db,
    ctx,
    { action: locked ? 'org.lock' : 'org.unlock', targetType: 'organization', organizationId },
    update,
  );
  if (!row) {
    const [member] = await db
      .select({ role: organizationMembers.role })
      .from(organizationMembers)
      .where(and(eq(organizationMembers.organizationId, organizationId), eq(organizationMembers.userId, userId)));
    if (!member) throw new AppError(404, 'not_found', 'No such organization.');
    throw new AppError(403, 'forbidden', 'Only an owner of this organization can lock or unlock it.');
  }
  const organization = fromRow(organizations, row);
  await onOrganizationLockChanged(db, { organizationId, requestId: ctx.requestId, locked });
  return organization;
}

/**
 * Runs after an organization is locked or unlocked. API keys and agents are already refused by
 * the credential check (423). On lock its live-event sockets close (code 4423); either way its
 * gateway sessions re-read their settings: disconnect and stay down, or reconnect.
 */
export async function onOrganizationLockChanged(
  db: Database,
  event: { organizationId: string; requestId: string; locked: boolean },
): Promise<void> {
  log('info', event.locked ? 'org.locked' : 'org.unlocked', {
    organization_id: event.organizationId,
    request_id: event.requestId,
  });
  if (event.locked) await closeLiveSockets(env, db, event.organizationId, { all: true });
  await refreshSessions(env, await gatewayIds(db, event.organizationId));
}
