/** Reading tasks: one board's list with filters, and one task, each with its dependencies. */
import { and, asc, count, eq, getTableColumns, inArray, isNotNull, isNull, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { boards } from '../db/schema';
import { tasks } from '../db/schema-domain';
import { AppError } from '../lib/errors';
import { boardOpenTo } from './boards';
import type { TaskStatus } from './task-workflow';
import { type TaskScope, type TaskView, taskNotFound } from './tasks';

const DEPENDS_ON = sql<string[]>`coalesce((SELECT array_agg(d.depends_on_task_id::text ORDER BY d.depends_on_task_id)
  FROM task_dependencies d WHERE d.task_id = ${tasks.id}), '{}'::text[])`;
const BLOCKED_BY = sql<string[]>`coalesce((SELECT array_agg(d.depends_on_task_id::text ORDER BY d.depends_on_task_id)
  FROM task_dependencies d JOIN tasks dt ON dt.id = d.depends_on_task_id
  WHERE d.task_id = ${tasks.id} AND dt.status <> 'done'), '{}'::text[])`;
const VIEW_COLUMNS = { ...getTableColumns(tasks), dependsOnTaskIds: DEPENDS_ON, blockedByTaskIds: BLOCKED_BY };

export interface TaskFilter {
  statuses?: TaskStatus[];
  assigneeAgentId?: string;
  unassigned?: boolean;
  tag?: string;
  limit: number;
  offset: number;
}

/** Oldest first (created_at, id); 404 when the board is not visible. */
export async function listTasks(db: Database, scope: TaskScope, filter: TaskFilter) {
  const where = and(
    eq(tasks.boardId, scope.boardId),
    eq(tasks.organizationId, scope.organizationId),
    filter.statuses ? inArray(tasks.status, filter.statuses) : undefined,
    filter.assigneeAgentId ? eq(tasks.assigneeAgentId, filter.assigneeAgentId) : undefined,
    filter.unassigned === undefined
      ? undefined
      : filter.unassigned
        ? isNull(tasks.assigneeAgentId)
        : isNotNull(tasks.assigneeAgentId),
    filter.tag ? sql`${tasks.tags} @> ARRAY[${filter.tag}::text]` : undefined,
  );
  const [board, items, [total]] = await db.batch([
    db
      .select({ id: boards.id })
      .from(boards)
      .where(
        and(
          eq(boards.id, scope.boardId),
          eq(boards.organizationId, scope.organizationId),
          boardOpenTo(db, scope.reader, boards.id),
        ),
      ),
    db
      .select(VIEW_COLUMNS)
      .from(tasks)
      .where(where)
      .orderBy(asc(tasks.createdAt), asc(tasks.id))
      .limit(filter.limit)
      .offset(filter.offset),
    db.select({ value: count() }).from(tasks).where(where),
  ]);
  if (board.length === 0) throw new AppError(404, 'not_found', 'No such board.');
  return { items: items as TaskView[], total: total?.value ?? 0 };
}

export async function getTask(db: Database, scope: TaskScope, taskId: string): Promise<TaskView> {
  const [task] = await db
    .select(VIEW_COLUMNS)
    .from(tasks)
    .innerJoin(boards, eq(boards.id, tasks.boardId))
    .where(
      and(
        eq(tasks.id, taskId),
        eq(tasks.boardId, scope.boardId),
        eq(tasks.organizationId, scope.organizationId),
        boardOpenTo(db, scope.reader, boards.id),
      ),
    );
  if (!task) throw taskNotFound();
  return task as TaskView;
}
