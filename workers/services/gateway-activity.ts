/**
 * What a gateway session records on its own: selected gateway events (connected, lost, pairing
 * needed, exec approvals asked and settled) as activity rows, each with its audit row, published
 * to the organization's live events.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { log } from '../lib/log';
import { activityRowsFrom, toActivityEvent } from './activity';
import { auditRowsFrom, systemContext } from './audit';
import { publishEvents } from './events';

export interface GatewayActivity {
  type: string;
  message: string;
  payload: Record<string, unknown>;
  /** Our agent (its board goes on the row too). */
  agentId?: string | null;
}

/** Never throws: a lost activity row must not break the session that reported it. */
export async function recordGatewayActivity(
  env: Env,
  db: Database,
  organizationId: string,
  gatewayId: string,
  entry: GatewayActivity,
): Promise<void> {
  const ctx = systemContext(organizationId, `gateway:${gatewayId}`);
  const payload = sql`${JSON.stringify({ gateway_id: gatewayId, ...entry.payload })}::jsonb`;
  try {
    const { rows } = await db.execute<Record<string, unknown>>(sql`
      WITH one AS (SELECT 1),
      audit AS (${auditRowsFrom(ctx, {
        action: entry.type,
        targetType: 'gateway',
        organizationId: sql`${organizationId}::uuid`,
        targetId: sql`${gatewayId}::text`,
        details: payload,
        from: sql`one`,
      })}),
      activity AS (${activityRowsFrom(ctx, {
        type: entry.type,
        message: sql`${entry.message}::text`,
        // Through the agents table: an agent deleted meanwhile leaves both empty rather than failing the row.
        boardId: sql`(SELECT board_id FROM agents WHERE id = ${entry.agentId ?? null}::uuid)`,
        agentId: sql`(SELECT id FROM agents WHERE id = ${entry.agentId ?? null}::uuid)`,
        payload,
        from: sql`one`,
      })})
      SELECT * FROM activity`);
    await publishEvents(env, organizationId, rows.map(toActivityEvent));
  } catch (err) {
    log('error', 'gateway.activity_failed', { gateway_id: gatewayId, type: entry.type, error: (err as Error).message });
  }
}
