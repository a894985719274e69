/**
 * Comments on tasks. Writing one needs write access to the board (operators) or, for a worker
 * agent, a task that is unassigned or its own (403 `not_your_task`); checked by the insert itself.
 */
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { pageOf } from '../db/paging';
import { fromRow } from '../db/rows';
import { boards } from '../db/schema';
import { taskComments } from '../db/schema-domain';
import { AppError } from '../lib/errors';
import type { ActivityEvent } from './activity';
import { runChange } from './activity-feed';
import type { AuditContext } from './audit';
import { boardOpenTo } from './boards';
import { getTask, readOnlyBoard, type TaskScope } from './tasks';

export type TaskComment = typeof taskComments.$inferSelect;

/** Oldest first; 404 when the task is not visible to the caller. */
export async function listTaskComments(
  db: Database,
  scope: TaskScope,
  taskId: string,
  page: { limit: number; offset: number },
) {
  await getTask(db, scope, taskId);
  const where = and(eq(taskComments.taskId, taskId), eq(taskComments.organizationId, scope.organizationId));
  return pageOf(db, taskComments, where, [asc(taskComments.createdAt), asc(taskComments.id)], page);
}

export async function addTaskComment(
  db: Database,
  ctx: AuditContext,
  scope: TaskScope,
  taskId: string,
  body: string,
): Promise<{ comment: TaskComment; events: ActivityEvent[] }> {
  const actor = scope.actor;
  const worker = actor.kind === 'agent' && !actor.isLead;
  const own = worker
    ? sql`(tasks.assignee_agent_id IS NULL OR tasks.assignee_agent_id = ${actor.agentId}::uuid)`
    : sql`true`;
  const authorType = ctx.actorType === 'agent' || ctx.actorType === 'api_key' ? ctx.actorType : 'user';
  const { rows, events } = await runChange(db, ctx, {
    change: sql`INSERT INTO task_comments (organization_id, board_id, task_id, author_type, author_id, body)
      SELECT tasks.organization_id, tasks.board_id, tasks.id, ${authorType}, ${ctx.actorId}::uuid, ${body}
      FROM tasks JOIN boards ON boards.id = tasks.board_id
      WHERE tasks.id = ${taskId}::uuid AND tasks.board_id = ${scope.boardId}::uuid
        AND tasks.organization_id = ${scope.organizationId}::uuid
        AND ${boardOpenTo(db, scope.writer, boards.id)} AND ${own}
      RETURNING *`,
    audit: {
      action: 'task.comment_create',
      targetType: 'task_comment',
      details: sql`jsonb_build_object('task_id', changed.task_id, 'length', length(changed.body))`,
    },
    activity: [
      {
        type: 'task.comment_created',
        boardId: sql`changed.board_id`,
        taskId: sql`changed.task_id`,
        agentId: actor.kind === 'agent' ? sql`${actor.agentId}::uuid` : sql`NULL::uuid`,
        message: sql`'Comment: ' || left(changed.body, 200)`,
        payload: sql`jsonb_build_object('comment_id', changed.id)`,
      },
    ],
  });
  const [row] = rows;
  if (row) return { comment: fromRow(taskComments, row), events };
  await getTask(db, scope, taskId);
  throw worker ? new AppError(403, 'not_your_task', 'This task is assigned to another agent.') : readOnlyBoard();
}
