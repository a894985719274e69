/** Audit rows: who did what, from where. Built as statements so they join the change's batch. */
import { type SQLWrapper, sql } from 'drizzle-orm';
import { type ActorType, type AuditContext, auditRowsFrom } from '../db/audit-rows';
import type { Database } from '../db/client';
import { auditLogs } from '../db/schema';

export type { ActorType, AuditContext };

export interface AuditEntry {
  action: string;
  targetType?: string;
  targetId?: string;
  success?: boolean;
  details?: Record<string, unknown>;
  /** Overrides the context's organization (e.g. an admin acting on another organization). */
  organizationId?: string | null;
}

export { auditRowsFrom };

/** Work the deployment does on its own (queue consumers, cron, gateway sessions). */
export const systemContext = (organizationId: string | null, requestId: string): AuditContext => ({
  organizationId,
  actorType: 'system',
  actorId: null,
  ip: null,
  userAgent: null,
  requestId,
});

export function auditInsert(db: Database, ctx: AuditContext, entry: AuditEntry) {
  return db.insert(auditLogs).values({
    organizationId: entry.organizationId === undefined ? ctx.organizationId : entry.organizationId,
    actorType: ctx.actorType,
    actorId: ctx.actorId,
    action: entry.action,
    success: entry.success ?? true,
    targetType: entry.targetType ?? null,
    targetId: entry.targetId ?? null,
    ip: ctx.ip,
    userAgent: ctx.userAgent?.slice(0, 512) ?? null,
    requestId: ctx.requestId,
    details: entry.details ?? {},
  });
}

/**
 * One atomic statement: `statement` (an INSERT/UPDATE/DELETE ... RETURNING with an `id` column)
 * plus its audit row, written only for rows the statement touched. Returns the touched rows.
 */
export async function mutateWithAudit<T extends Record<string, unknown>>(
  db: Database,
  ctx: AuditContext,
  entry: Omit<AuditEntry, 'targetId'> & { targetType: string },
  statement: SQLWrapper,
): Promise<T[]> {
  const org = entry.organizationId === undefined ? ctx.organizationId : entry.organizationId;
  const result = await db.execute<T>(sql`
    WITH changed AS (${statement.getSQL()}),
    audit AS (${auditRowsFrom(ctx, {
      action: entry.action,
      targetType: entry.targetType,
      organizationId: sql`${org}::uuid`,
      targetId: sql`changed.id::text`,
      details: sql`${JSON.stringify(entry.details ?? {})}::jsonb`,
      from: sql`changed`,
      success: entry.success,
    })})
    SELECT * FROM changed`);
  return result.rows;
}
