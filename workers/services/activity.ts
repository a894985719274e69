/**
 * The activity feed: one `activity_events` row per domain change, written in the same statement
 * as the change. Its id is the live event's sequence number (see durable-objects/event-hub.ts).
 */
import { type SQL, sql } from 'drizzle-orm';
import { parseJson } from '../db/rows';
import type { AuditContext } from './audit';

/** What subscribers and `GET /api/v1/activity` see. */
export interface ActivityEvent {
  id: number;
  organization_id: string;
  board_id: string | null;
  task_id: string | null;
  agent_id: string | null;
  type: string;
  message: string;
  actor_type: string;
  actor_id: string | null;
  payload: Record<string, unknown>;
  created_at: string;
}

/**
 * `INSERT INTO activity_events ... SELECT ... FROM <from> RETURNING <wire columns>`, to sit in the
 * WITH list of the statement that makes the change (one row per row of `from`). Select the CTE's
 * rows and map them with `toActivityEvent` to publish them after the statement commits.
 */
export function activityRowsFrom(
  ctx: AuditContext,
  entry: { type: string; message: SQL; boardId: SQL; taskId?: SQL; agentId?: SQL; payload?: SQL; from: SQL },
): SQL {
  return sql`INSERT INTO activity_events (organization_id, board_id, task_id, agent_id, type, message, actor_type, actor_id, payload)
    SELECT ${ctx.organizationId}::uuid, ${entry.boardId}, ${entry.taskId ?? sql`NULL::uuid`}, ${entry.agentId ?? sql`NULL::uuid`},
           ${entry.type}::text, ${entry.message}, ${ctx.actorType}::text, ${ctx.actorId}::uuid, ${entry.payload ?? sql`'{}'::jsonb`}
    FROM ${entry.from}
    RETURNING ${ACTIVITY_COLUMNS}`;
}

/** Wire columns, timestamps as ISO 8601 text so raw rows map without driver-specific parsing. */
export const ACTIVITY_COLUMNS = sql.raw(
  `id, organization_id, board_id, task_id, agent_id, type, message, actor_type, actor_id, payload,
   to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at`,
);

export function toActivityEvent(raw: Record<string, unknown>): ActivityEvent {
  return {
    id: Number(raw.id),
    organization_id: String(raw.organization_id),
    board_id: (raw.board_id as string | null) ?? null,
    task_id: (raw.task_id as string | null) ?? null,
    agent_id: (raw.agent_id as string | null) ?? null,
    type: String(raw.type),
    message: String(raw.message),
    actor_type: String(raw.actor_type),
    actor_id: (raw.actor_id as string | null) ?? null,
    payload: parseJson<Record<string, unknown>>(raw.payload),
    created_at: String(raw.created_at),
  };
}
