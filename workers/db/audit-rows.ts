/** The one way an audit row is written inside another statement. */
import { type SQL, sql } from 'drizzle-orm';

export type ActorType = 'user' | 'api_key' | 'agent' | 'webhook' | 'system' | 'anonymous';

/** Who is acting and from where; set once per request by the auth middleware. */
export interface AuditContext {
  organizationId: string | null;
  actorType: ActorType;
  actorId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string;
}

/**
 * `INSERT INTO audit_logs ... SELECT ... FROM <from>`, to sit in the WITH list of the statement
 * that makes the change: one audit row per row of `from`, so only if the change happened.
 */
export function auditRowsFrom(
  ctx: AuditContext,
  entry: {
    action: string | SQL;
    targetType: string;
    organizationId: SQL;
    targetId: SQL;
    details: SQL;
    from: SQL;
    success?: boolean;
  },
): SQL {
  return sql`INSERT INTO audit_logs (organization_id, actor_type, actor_id, action, success, target_type, target_id, ip, user_agent, request_id, details)
    SELECT ${entry.organizationId}, ${ctx.actorType}::text, ${ctx.actorId}::text, ${entry.action}::text, ${entry.success ?? true},
           ${entry.targetType}::text, ${entry.targetId}, ${ctx.ip}::text, ${ctx.userAgent?.slice(0, 512) ?? null}::text,
           ${ctx.requestId}::text, ${entry.details}
    FROM ${entry.from}`;
}
