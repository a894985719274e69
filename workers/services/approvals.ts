/**
 * Approvals: an agent or operator asks for one on tasks of a board; an operator approves or
 * rejects it. One pending approval per task lives in a partial unique index (409 on a second).
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { pgErrorCode, UNIQUE_VIOLATION } from '../db/errors';
import { fromRow, parseJson } from '../db/rows';
import { boards } from '../db/schema';
import { approvals } from '../db/schema-domain';
import { AppError } from '../lib/errors';
import type { ActivityEvent } from './activity';
import { jsonb, runChange, uuidArray } from './activity-feed';
import type { AuditContext } from './audit';
import { type BoardAccess, type BoardViewer, boardNotFound, boardOpenTo, boardReadOnly } from './boards';

export const APPROVAL_STATUSES = ['pending', 'approved', 'rejected'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

export type Approval = typeof approvals.$inferSelect & { taskIds: string[] };

export interface NewApproval {
  taskIds: string[];
  actionType: string;
  payload: Record<string, unknown>;
  confidence: number;
  rubricScores?: Record<string, number> | null;
}

/** The tasks an approval covers, as a column of the approvals row (`a` is the approvals alias). */
const TASK_IDS = sql.raw(
  `coalesce((SELECT array_agg(at.task_id ORDER BY at.task_id) FROM approval_tasks at WHERE at.approval_id = a.id), '{}'::uuid[]) AS task_ids`,
);

export function approvalFromRow(raw: Record<string, unknown>): Approval {
  const ids = raw.task_ids;
  const taskIds = Array.isArray(ids)
    ? ids.map(String)
    : typeof ids === 'string'
      ? ids
          .replace(/^\{|\}$/g, '')
          .split(',')
          .filter(Boolean)
      : [];
  return { ...fromRow(approvals, raw), taskIds };
}

/** Board `boardId` must be writable by the caller (404 unseen, 403 read-only) and every task must be on it. */
export async function createApproval(
  db: Database,
  ctx: AuditContext,
  access: BoardAccess,
  boardId: string,
  input: NewApproval,
): Promise<{ approval: Approval; events: ActivityEvent[] }> {
  const taskIds = [...new Set(input.taskIds.map((id) => id.toLowerCase()))].sort();
  const single = taskIds.length === 1 ? sql`${taskIds[0]}::uuid` : sql`NULL::uuid`;
  let result: Awaited<ReturnType<typeof runChange>>;
  try {
    result = await runChange(db, ctx, {
      before: [
        sql`b AS (SELECT id, organization_id, ${boardOpenTo(db, access.write, boards.id)} AS can_write FROM boards
          WHERE id = ${boardId}::uuid AND organization_id = ${access.read.organizationId}::uuid
            AND ${boardOpenTo(db, access.read, boards.id)})`,
        sql`t AS (SELECT tasks.id FROM tasks JOIN b ON b.id = tasks.board_id WHERE tasks.id = ANY(${uuidArray(taskIds)}))`,
      ],
      change: sql`INSERT INTO approvals (organization_id, board_id, action_type, payload, confidence, rubric_scores,
          requested_by_type, requested_by_id)
        SELECT b.organization_id, b.id, ${input.actionType}::text, ${jsonb(input.payload)}, ${input.confidence}::int,
          ${input.rubricScores ? jsonb(input.rubricScores) : sql`NULL::jsonb`}, ${ctx.actorType}::text, ${ctx.actorId}::uuid
        FROM b WHERE b.can_write AND (SELECT count(*) FROM t) = ${taskIds.length}::int
        RETURNING *, ${uuidArray(taskIds)} AS task_ids`,
      after: [
        sql`links AS (INSERT INTO approval_tasks (approval_id, task_id) SELECT changed.id, t.id FROM changed, t)`,
      ],
      audit: {
        action: 'approval.create',
        targetType: 'approval',
        details: jsonb({ board_id: boardId, task_ids: taskIds, action_type: input.actionType }),
      },
      activity: [
        {
          type: 'approval.created',
          message: sql`format('Approval requested: %s', changed.action_type)`,
          boardId: sql`changed.board_id`,
          taskId: single,
          agentId: ctx.actorType === 'agent' ? sql`${ctx.actorId}::uuid` : undefined,
          payload: sql`jsonb_build_object('approval_id', changed.id, 'action_type', changed.action_type,
            'task_ids', ${jsonb(taskIds)}, 'confidence', changed.confidence)`,
        },
      ],
      extra: {
        board_found: sql`EXISTS (SELECT 1 FROM b)`,
        can_write: sql`coalesce((SELECT can_write FROM b), false)`,
        found_task_ids: sql`(SELECT coalesce(json_agg(id), '[]'::json) FROM t)`,
      },
    });
  } catch (err) {
    if (pgErrorCode(err) === UNIQUE_VIOLATION) throw await pendingConflict(db, taskIds);
    throw err;
  }
  const [row] = result.rows;
  if (!row) {
    if (!result.extra.board_found) throw boardNotFound();
    if (!result.extra.can_write) throw boardReadOnly();
    const raw = result.extra.found_task_ids;
    const found = new Set(parseJson<string[]>(raw));
    const missing = taskIds.filter((id) => !found.has(id));
    throw new AppError(422, 'validation_failed', 'Every task must be on this board.', {
      details: { issues: [{ path: 'task_ids', message: 'no such task on this board' }], missing_task_ids: missing },
    });
  }
  return { approval: approvalFromRow(row), events: result.events };
}

/** The 409 after the one-pending-per-task index refused: names the tasks already waiting (best effort). */
async function pendingConflict(db: Database, taskIds: string[]): Promise<AppError> {
  const { rows } = await db.execute<{ task_id: string }>(
    sql`SELECT task_id FROM approval_tasks WHERE pending AND task_id = ANY(${uuidArray(taskIds)})`,
  );
  return new AppError(409, 'approval_pending', 'A task already has a pending approval.', {
    details: { task_ids: rows.map((r) => r.task_id) },
  });
}

export async function listApprovals(
  db: Database,
  viewer: BoardViewer,
  boardId: string,
  filter: { status?: ApprovalStatus; limit: number; offset: number },
): Promise<{ items: Approval[]; total: number }> {
  const where = sql`a.board_id = ${boardId}::uuid AND a.organization_id = ${viewer.organizationId}::uuid
    ${filter.status ? sql`AND a.status = ${filter.status}::text` : sql``}`;
  const board = sql`SELECT 1 FROM boards WHERE id = ${boardId}::uuid AND organization_id = ${viewer.organizationId}::uuid
    AND ${boardOpenTo(db, viewer, boards.id)}`;
  const { rows } = await db.execute<Record<string, unknown>>(sql`
    WITH b AS (${board}),
    page AS (
      SELECT a.*, ${TASK_IDS} FROM approvals a
      WHERE ${where} AND EXISTS (SELECT 1 FROM b)
      ORDER BY a.created_at DESC, a.id DESC LIMIT ${filter.limit}::int OFFSET ${filter.offset}::int)
    SELECT EXISTS (SELECT 1 FROM b) AS board_found,
      (SELECT count(*)::int FROM approvals a WHERE ${where}) AS total,
      (SELECT coalesce(json_agg(page ORDER BY page.created_at DESC, page.id DESC), '[]'::json) FROM page) AS items`);
  const [row] = rows;
  if (!row?.board_found) throw boardNotFound();
  const items = parseJson<Record<string, unknown>[]>(row.items);
  return { items: items.map(approvalFromRow), total: Number(row.total) };
}

/**
 * Approves or rejects a pending approval and releases its tasks (`approval_tasks.pending`) in the
 * same statement. 409 when it is no longer pending. The board's lead is told through an
 * `approval.resolved` event addressed to it (`agent_id`).
 */
export async function resolveApproval(
  db: Database,
  ctx: AuditContext,
  access: BoardAccess,
  boardId: string,
  approvalId: string,
  decision: 'approved' | 'rejected',
  note: string | null,
): Promise<{ approval: Approval; events: ActivityEvent[] }> {
  const verb = decision === 'approved' ? 'approve' : 'reject';
  const payload: SQL = sql`jsonb_build_object('approval_id', changed.id, 'status', changed.status,
    'action_type', changed.action_type, 'task_ids', changed.task_ids, 'note', changed.resolution_note)`;
  const { rows, events, extra } = await runChange(db, ctx, {
    before: [
      sql`target AS (SELECT approvals.id, approvals.status, ${boardOpenTo(db, access.write, boards.id)} AS can_write
        FROM approvals JOIN boards ON boards.id = approvals.board_id
        WHERE approvals.id = ${approvalId}::uuid AND approvals.board_id = ${boardId}::uuid
          AND approvals.organization_id = ${access.read.organizationId}::uuid AND ${boardOpenTo(db, access.read, boards.id)})`,
    ],
    change: sql`UPDATE approvals SET status = ${decision}::text, resolved_at = now(),
        resolved_by_user_id = ${ctx.actorType === 'user' ? ctx.actorId : null}::uuid, resolution_note = ${note}::text
      WHERE id = (SELECT id FROM target WHERE can_write) AND status = 'pending'
      RETURNING *, coalesce((SELECT array_agg(task_id ORDER BY task_id) FROM approval_tasks WHERE approval_id = approvals.id), '{}'::uuid[]) AS task_ids`,
    after: [
      sql`released AS (UPDATE approval_tasks SET pending = false WHERE approval_id IN (SELECT id FROM changed))`,
      sql`lead AS (SELECT agents.id FROM agents JOIN changed ON agents.board_id = changed.board_id WHERE agents.is_lead)`,
    ],
    audit: { action: `approval.${verb}`, targetType: 'approval', details: jsonb({ board_id: boardId, note }) },
    activity: [
      {
        type: `approval.${decision}`,
        message: sql`format(${`Approval %s ${decision}`}::text, changed.action_type)`,
        boardId: sql`changed.board_id`,
        taskId: sql`(CASE WHEN cardinality(changed.task_ids) = 1 THEN changed.task_ids[1] END)`,
        payload,
      },
      {
        type: 'approval.resolved',
        message: sql`format(${`Approval %s ${decision}; tell the board lead`}::text, changed.action_type)`,
        boardId: sql`changed.board_id`,
        taskId: sql`(CASE WHEN cardinality(changed.task_ids) = 1 THEN changed.task_ids[1] END)`,
        agentId: sql`lead.id`,
        payload,
        from: sql`changed CROSS JOIN lead`,
      },
    ],
    extra: { current_status: sql`(SELECT status FROM target)`, can_write: sql`(SELECT can_write FROM target)` },
  });
  const [row] = rows;
  if (!row) {
    if (extra.current_status === null || extra.current_status === undefined) throw approvalNotFound();
    if (!extra.can_write) throw boardReadOnly();
    throw new AppError(409, 'approval_not_pending', 'This approval has already been resolved.', {
      details: { status: extra.current_status },
    });
  }
  return { approval: approvalFromRow(row), events };
}

const approvalNotFound = () => new AppError(404, 'not_found', 'No such approval.');
