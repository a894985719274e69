/** Operator task routes: `/api/v1/boards/{id}/tasks[/{task}[/comments]]`. Rules: services/task-workflow.ts. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import type { TaskComment } from '../services/task-comments';
import { addTaskComment, listTaskComments } from '../services/task-comments';
import { TASK_PRIORITIES, TASK_STATUSES, type TaskStatus } from '../services/task-workflow';
import {
  createTask,
  deleteTask,
  getTask,
  listTasks,
  operatorScope,
  type TaskFilter,
  type TaskView,
  updateTask,
} from '../services/tasks';
import type { AppEnv } from '../types';
import { publishActivity } from './publish';
import { authErrors, errorContent, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

const uuid = z.uuid({ error: 'must be a UUID' });

export const TaskRead = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    board_id: z.uuid(),
    title: z.string(),
    description: z.string(),
    status: z.enum(TASK_STATUSES),
    priority: z.enum(TASK_PRIORITIES),
    due_at: timestamp.nullable(),
    assignee_agent_id: z.uuid().nullable(),
    created_by_user_id: z.uuid().nullable(),
    created_by_agent_id: z.uuid().nullable(),
    tags: z.array(z.string()),
    custom_fields: z.record(z.string(), z.unknown()),
    depends_on_task_ids: z.array(z.uuid()),
    blocked_by_task_ids: z.array(z.uuid()).openapi({ description: 'Dependencies that are not done yet' }),
    is_blocked: z.boolean().openapi({ description: 'Not done and waiting on dependencies: cannot leave inbox' }),
    version: z.number().int().openapi({ description: 'Send it back with PATCH; 409 version_conflict when stale' }),
    done_at: timestamp.nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('Task');

export const taskToRead = (t: TaskView): z.infer<typeof TaskRead> => ({
  id: t.id,
  organization_id: t.organizationId,
  board_id: t.boardId,
  title: t.title,
  description: t.description,
  status: t.status as TaskStatus,
  priority: t.priority as z.infer<typeof TaskRead>['priority'],
  due_at: t.dueAt?.toISOString() ?? null,
  assignee_agent_id: t.assigneeAgentId,
  created_by_user_id: t.createdByUserId,
  created_by_agent_id: t.createdByAgentId,
  tags: t.tags,
  custom_fields: (t.customFields ?? {}) as Record<string, unknown>,
  depends_on_task_ids: t.dependsOnTaskIds,
  blocked_by_task_ids: t.blockedByTaskIds,
  is_blocked: t.status !== 'done' && t.blockedByTaskIds.length > 0,
  version: t.version,
  done_at: t.doneAt?.toISOString() ?? null,
  created_at: t.createdAt.toISOString(),
  updated_at: t.updatedAt.toISOString(),
});

/** Every settable field; unknown fields are ignored, like everywhere in the API. */
export const TaskFieldsSchema = z.object({
  title: z.string().trim().min(1).max(200),
  description: z.string().max(20_000),
  status: z.enum(TASK_STATUSES),
  priority: z.enum(TASK_PRIORITIES),
  due_at: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time' }).nullable(),
  assignee_agent_id: uuid.nullable(),
  tags: z.array(z.string().trim().min(1).max(50)).max(20),
  custom_fields: z
    .record(z.string().max(63), z.unknown())
    .refine((o) => Object.keys(o).length <= 100, 'at most 100 fields')
    .openapi({ description: "Values for the organization's custom fields (GET /api/v1/custom-fields); null clears" }),
  depends_on_task_ids: z.array(uuid).max(100).openapi({ description: 'Tasks of the same board; replaces the set' }),
});

export const TaskCreate = TaskFieldsSchema.partial()
  .extend({ title: TaskFieldsSchema.shape.title })
  .openapi('TaskCreate');
const TaskUpdate = TaskFieldsSchema.partial()
  .extend({ version: z.number().int().min(1).openapi({ description: 'The version you read' }) })
  .openapi('TaskUpdate');

const STATUS_LIST = new RegExp(`^(${TASK_STATUSES.join('|')})(,(${TASK_STATUSES.join('|')}))*$`);
export const TaskListQuery = Pagination.extend({
  status: z
    .string()
    .regex(STATUS_LIST, { error: `must be a comma-separated list of ${TASK_STATUSES.join(', ')}` })
    .optional(),
  assignee: uuid.optional().openapi({ description: 'Tasks assigned to this agent' }),
  unassigned: z.enum(['true', 'false']).optional().openapi({ description: 'true: only unassigned tasks' }),
  tag: z.string().trim().min(1).max(50).optional(),
});

export function toFilter(q: z.infer<typeof TaskListQuery>): TaskFilter {
  return {
    statuses: q.status ? ([...new Set(q.status.split(','))] as TaskStatus[]) : undefined,
    assigneeAgentId: q.assignee,
    unassigned: q.unassigned === undefined ? undefined : q.unassigned === 'true',
    tag: q.tag,
    limit: q.limit,
    offset: q.offset,
  };
}

export const CommentRead = z
  .object({
    id: z.uuid(),
    task_id: z.uuid(),
    board_id: z.uuid(),
    author_type: z.enum(['user', 'agent', 'api_key']),
    author_id: z.uuid().nullable(),
    body: z.string(),
    created_at: timestamp,
  })
  .openapi('TaskComment');
export const CommentCreate = z.object({ body: z.string().trim().min(1).max(10_000) }).openapi('TaskCommentCreate');

export const commentToRead = (c: TaskComment): z.infer<typeof CommentRead> => ({
  id: c.id,
  task_id: c.taskId,
  board_id: c.boardId,
  author_type: c.authorType as z.infer<typeof CommentRead>['author_type'],
  author_id: c.authorId,
  body: c.body,
  created_at: c.createdAt.toISOString(),
});

const BoardParam = z.object({ id: uuid });
const TaskParam = z.object({ id: uuid, task: uuid });
const tags = ['tasks'];
const readers = { user: 'member', apiKey: 'read' } as const;
const writers = { user: 'member', apiKey: 'write' } as const;
const noTask = { 404: errorContent('No such task (or board)') } as const;
const invalid = { 422: errorContent('Invalid, or a dependency cycle (`dependency_cycle`)') } as const;
/** The workflow's conflicts; see services/task-workflow.ts for each code. */
export const workflowConflicts = {
  409: errorContent(
    'version_conflict, task_blocked_cannot_transition (details.blocked_by_task_ids), pending_approval, review_required, comment_required or approval_required',
  ),
} as const;

export const taskRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/tasks',
      tags,
      summary: "List a board's tasks, oldest first",
      request: { params: BoardParam, query: TaskListQuery },
      responses: { 200: jsonResponse('Tasks', listOf(TaskRead)), ...authErrors, 404: errorContent('No such board') },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const query = c.req.valid('query');
      const scope = operatorScope(principal, organizationId, c.req.valid('param').id);
      const { items, total } = await listTasks(c.var.db, scope, toFilter(query));
      return c.json({ items: items.map(taskToRead), total, limit: query.limit, offset: query.offset }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/boards/{id}/tasks',
      tags,
      summary: 'Create a task',
      request: { params: BoardParam, body: jsonBody(TaskCreate) },
      responses: {
        201: jsonResponse('Created', TaskRead),
        ...authErrors,
        404: errorContent('No such board'),
        ...workflowConflicts,
        ...invalid,
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, writers);
      const scope = operatorScope(principal, organizationId, c.req.valid('param').id);
      const { task, events } = await createTask(c.var.db, c.var.audit, scope, c.req.valid('json'));
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(taskToRead(task), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/tasks/{task}',
      tags,
      summary: 'Read one task',
      request: { params: TaskParam },
      responses: { 200: jsonResponse('The task', TaskRead), ...authErrors, ...noTask },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { id, task } = c.req.valid('param');
      return c.json(taskToRead(await getTask(c.var.db, operatorScope(principal, organizationId, id), task)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/boards/{id}/tasks/{task}',
      tags,
      summary: 'Change a task (optimistic concurrency: send the version you read)',
      request: { params: TaskParam, body: jsonBody(TaskUpdate) },
      responses: {
        200: jsonResponse('Changed; carries the new version', TaskRead),
        ...authErrors,
        ...noTask,
        ...workflowConflicts,
        ...invalid,
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, writers);
      const { id, task: taskId } = c.req.valid('param');
      const { version, ...fields } = c.req.valid('json');
      const scope = operatorScope(principal, organizationId, id);
      const { task, events } = await updateTask(c.var.db, c.var.audit, scope, taskId, fields, version);
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(taskToRead(task), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/boards/{id}/tasks/{task}',
      tags,
      summary: 'Delete a task (its dependencies, comments and approval links go with it)',
      request: { params: TaskParam },
      responses: { 204: { description: 'Deleted' }, ...authErrors, ...noTask },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, writers);
      const { id, task } = c.req.valid('param');
      const { events } = await deleteTask(c.var.db, c.var.audit, operatorScope(principal, organizationId, id), task);
      c.set('audited', true);
      publishActivity(c, events);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/tasks/{task}/comments',
      tags,
      summary: "List a task's comments, oldest first",
      request: { params: TaskParam, query: Pagination },
      responses: { 200: jsonResponse('Comments', listOf(CommentRead)), ...authErrors, ...noTask },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { id, task } = c.req.valid('param');
      const page = c.req.valid('query');
      const scope = operatorScope(principal, organizationId, id);
      const { items, total } = await listTaskComments(c.var.db, scope, task, page);
      return c.json({ items: items.map(commentToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/boards/{id}/tasks/{task}/comments',
      tags,
      summary: 'Comment on a task',
      request: { params: TaskParam, body: jsonBody(CommentCreate) },
      responses: {
        201: jsonResponse('Created', CommentRead),
        ...authErrors,
        ...noTask,
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, writers);
      const { id, task } = c.req.valid('param');
      const scope = operatorScope(principal, organizationId, id);
      const { comment, events } = await addTaskComment(c.var.db, c.var.audit, scope, task, c.req.valid('json').body);
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(commentToRead(comment), 201);
    },
  );
