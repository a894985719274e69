/**
 * Domain changes as one statement (the change, its audit row, its activity rows), and the
 * activity feed read back: `GET /api/v1/activity` by cursor (newest first) or after an id (oldest first).
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { parseJson } from '../db/rows';
import { activityEvents } from '../db/schema-domain';
import { AppError } from '../lib/errors';
import { ACTIVITY_COLUMNS, type ActivityEvent, activityRowsFrom, toActivityEvent } from './activity';
import { type AuditContext, auditRowsFrom } from './audit';
import { type BoardViewer, readableBoard } from './boards';

export interface ActivitySpec {
  type: string;
  message: SQL;
  boardId: SQL;
  taskId?: SQL;
  agentId?: SQL;
  payload?: SQL;
  /** Rows to write one event each for; `changed` by default. */
  from?: SQL;
}

export interface ChangeSpec {
  /** CTEs before `changed`, each `name AS (...)`; they may feed the change. */
  before?: SQL[];
  /** INSERT/UPDATE/DELETE ... RETURNING * (with an `id`); becomes the `changed` CTE. */
  change: SQL;
  /** CTEs after `changed` (they may read it), each `name AS (...)`. */
  after?: SQL[];
  audit: { action: string | SQL; targetType: string; details?: SQL; from?: SQL };
  activity: ActivitySpec[];
  /** Extra scalar columns of the final SELECT, e.g. `(SELECT count(*) FROM g)`. */
  extra?: Record<string, SQL>;
}

export interface ChangeResult {
  rows: Record<string, unknown>[];
  events: ActivityEvent[];
  extra: Record<string, unknown>;
}

/** Audit rows carry the actor's organization; activity rows the same. */
function auditFor(ctx: AuditContext, spec: ChangeSpec['audit']): SQL {
  return auditRowsFrom(ctx, {
    action: spec.action,
    targetType: spec.targetType,
    organizationId: sql`${ctx.organizationId}::uuid`,
    targetId: sql`changed.id::text`,
    details: spec.details ?? sql`'{}'::jsonb`,
    from: spec.from ?? sql`changed`,
  });
}

/** The single statement for a change: run it with `db.execute`, or as the last item of a `db.batch`. */
export function changeStatement(ctx: AuditContext, spec: ChangeSpec): SQL {
  const ctes: SQL[] = [...(spec.before ?? []), sql`changed AS (${spec.change})`, ...(spec.after ?? [])];
  ctes.push(sql`audit AS (${auditFor(ctx, spec.audit)})`);
  spec.activity.forEach((a, i) => {
    ctes.push(
      sql`${sql.raw(`activity_${i}`)} AS (${activityRowsFrom(ctx, {
        type: a.type,
        message: a.message,
        boardId: a.boardId,
        taskId: a.taskId,
        agentId: a.agentId,
        payload: a.payload,
        from: a.from ?? sql`changed`,
      })})`,
    );
  });
  const events = spec.activity.length
    ? sql.join(
        spec.activity.map((_, i) => sql.raw(`SELECT * FROM activity_${i}`)),
        sql` UNION ALL `,
      )
    : sql`SELECT NULL::bigint AS id WHERE false`;
  const extra = Object.entries(spec.extra ?? {}).map(([name, value]) => sql`, ${value} AS ${sql.identifier(name)}`);
  return sql`WITH ${sql.join(ctes, sql`, `)}
    SELECT coalesce((SELECT json_agg(changed) FROM changed), '[]'::json) AS rows,
           (SELECT coalesce(json_agg(e ORDER BY e.id), '[]'::json) FROM (${events}) e) AS events
           ${sql.join(extra, sql``)}`;
}

export function changeResult(raw: Record<string, unknown> | undefined): ChangeResult {
  if (!raw) throw new Error('change statement returned no row');
  const { rows, events, ...extra } = raw;
  return {
    rows: (parseJson(rows) as Record<string, unknown>[]) ?? [],
    events: ((parseJson(events) as Record<string, unknown>[]) ?? []).map(toActivityEvent),
    extra,
  };
}

export async function runChange(db: Database, ctx: AuditContext, spec: ChangeSpec): Promise<ChangeResult> {
  const result = await db.execute<Record<string, unknown>>(changeStatement(ctx, spec));
  return changeResult(result.rows[0]);
}

/** A JSON object as a jsonb parameter. */
export const jsonb = (value: unknown): SQL => sql`${JSON.stringify(value)}::jsonb`;

/** A text array parameter that survives commas and quotes. */
export const textArray = (values: readonly string[]): SQL =>
  sql`ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(values)}::jsonb))::text[]`;

/** A uuid array parameter (values already validated as UUIDs). */
export const uuidArray = (values: readonly string[]): SQL =>
  sql`ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(values)}::jsonb)::uuid)`;

export interface ActivityFilter {
  boardId?: string;
  taskId?: string;
  agentId?: string;
  /** Prefix of the event type: `task.` or `task.status_changed`. */
  type?: string;
  /** Events with a larger id, oldest first: how live clients fill gaps. */
  afterId?: number;
  /** From `next_cursor`: events with a smaller id, newest first. */
  before?: number;
  limit: number;
}

/**
 * The caller's organization only, and only events of boards the viewer may read; events of no
 * board (board groups, deleted boards) only for viewers who read every board.
 */
export async function listActivity(
  db: Database,
  viewer: BoardViewer,
  filter: ActivityFilter,
): Promise<{ items: ActivityEvent[]; nextCursor: string | null }> {
  const conditions: SQL[] = [sql`organization_id = ${viewer.organizationId}::uuid`];
  if (viewer.memberId !== null) {
    const visible = readableBoard(db, viewer, activityEvents.boardId);
    if (visible) conditions.push(sql`board_id IS NOT NULL AND ${visible}`);
  }
  if (filter.boardId) conditions.push(sql`board_id = ${filter.boardId}::uuid`);
  if (filter.taskId) conditions.push(sql`task_id = ${filter.taskId}::uuid`);
  if (filter.agentId) conditions.push(sql`agent_id = ${filter.agentId}::uuid`);
  if (filter.type) conditions.push(sql`starts_with(type, ${filter.type}::text)`);
  const ascending = filter.afterId !== undefined;
  if (filter.afterId !== undefined) conditions.push(sql`id > ${filter.afterId}::bigint`);
  if (filter.before !== undefined) conditions.push(sql`id < ${filter.before}::bigint`);
  const result = await db.execute<Record<string, unknown>>(sql`
    SELECT ${ACTIVITY_COLUMNS} FROM activity_events
    WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY id ${sql.raw(ascending ? 'ASC' : 'DESC')}
    LIMIT ${filter.limit + 1}::int`);
  const all = result.rows.map(toActivityEvent);
  const items = all.slice(0, filter.limit);
  const more = all.length > filter.limit;
  const last = items.at(-1);
  return { items, nextCursor: more && last ? String(last.id) : null };
}

/** Cursors are event ids; anything else is a client error naming the field. */
export function parseCursor(field: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,18}$/.test(value)) {
    throw new AppError(422, 'validation_failed', `${field} is not a valid cursor.`, {
      details: { issues: [{ path: field, message: 'must be an event id' }] },
    });
  }
  return Number(value);
}
