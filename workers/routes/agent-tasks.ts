/**
 * Tasks through the agent API (`/api/v1/agent/tasks[/{task}[/comments]]`, agent token). An agent
 * sees only its own board (another board's task: 404). Leads create, assign and review; workers
 * move unassigned or their own tasks along (role rules: services/task-workflow.ts).
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { requireAgent } from '../auth/policy';
import { AppError } from '../lib/errors';
import { validationHook } from '../middleware/errors';
import { addTaskComment, listTaskComments } from '../services/task-comments';
import { agentScope, createTask, getTask, listTasks, updateTask } from '../services/tasks';
import type { AppEnv } from '../types';
import { publishActivity } from './publish';
import { errorContent, jsonBody, jsonResponse, listOf, Pagination } from './schemas';
import {
  CommentCreate,
  CommentRead,
  commentToRead,
  TaskCreate,
  TaskFieldsSchema,
  TaskListQuery,
  TaskRead,
  taskToRead,
  toFilter,
  workflowConflicts,
} from './tasks';

const uuid = z.uuid({ error: 'must be a UUID' });
const TaskParam = z.object({ task: uuid });
const AgentTaskUpdate = TaskFieldsSchema.partial()
  .extend({
    version: z
      .number()
      .int()
      .min(1)
      .optional()
      .openapi({ description: 'The version you read; when given, 409 version_conflict if stale' }),
  })
  .openapi('AgentTaskUpdate');

const agentErrors = {
  401: errorContent('Missing, unknown or revoked agent token'),
  403: errorContent('Not an agent, or not allowed by the role rules'),
  423: errorContent('The organization is locked'),
  429: errorContent('Too many requests'),
} as const;
const noTask = { 404: errorContent('No such task on your board') } as const;
const tags = ['agent-api'];

export const agentTaskRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/tasks',
      tags,
      summary: "The tasks of the agent's board, oldest first",
      request: { query: TaskListQuery },
      responses: { 200: jsonResponse('Tasks', listOf(TaskRead)), ...agentErrors },
    }),
    async (c) => {
      const scope = agentScope(requireAgent(c.var.principal));
      const query = c.req.valid('query');
      const { items, total } = await listTasks(c.var.db, scope, toFilter(query));
      return c.json({ items: items.map(taskToRead), total, limit: query.limit, offset: query.offset }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/agent/tasks',
      tags,
      summary: "Create a task on the agent's board (board lead only)",
      request: { body: jsonBody(TaskCreate) },
      responses: {
        201: jsonResponse('Created', TaskRead),
        ...agentErrors,
        ...workflowConflicts,
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      if (!principal.isLead) throw new AppError(403, 'lead_only', 'Only the board lead creates tasks.');
      const { task, events } = await createTask(c.var.db, c.var.audit, agentScope(principal), c.req.valid('json'));
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(taskToRead(task), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/tasks/{task}',
      tags,
      summary: 'Read one task of the agent’s board',
      request: { params: TaskParam },
      responses: { 200: jsonResponse('The task', TaskRead), ...agentErrors, ...noTask },
    }),
    async (c) => {
      const scope = agentScope(requireAgent(c.var.principal));
      return c.json(taskToRead(await getTask(c.var.db, scope, c.req.valid('param').task)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/agent/tasks/{task}',
      tags,
      summary: 'Change a task under the role rules',
      description:
        'Workers: only `status` and `custom_fields`, on unassigned tasks or their own; inbox -> in_progress ' +
        'self-assigns, in_progress -> review hands the task to the board lead, in_progress -> inbox unassigns. ' +
        'Leads: review -> done | inbox, assignment, and inbox -> in_progress while assigning. Board rules apply to all.',
      request: { params: TaskParam, body: jsonBody(AgentTaskUpdate) },
      responses: {
        200: jsonResponse('Changed; carries the new version', TaskRead),
        ...agentErrors,
        ...noTask,
        ...workflowConflicts,
        422: errorContent('Invalid, or a dependency cycle (`dependency_cycle`)'),
      },
    }),
    async (c) => {
      const scope = agentScope(requireAgent(c.var.principal));
      const { version, ...fields } = c.req.valid('json');
      const { task, events } = await updateTask(
        c.var.db,
        c.var.audit,
        scope,
        c.req.valid('param').task,
        fields,
        version,
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(taskToRead(task), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/tasks/{task}/comments',
      tags,
      summary: "A task's comments, oldest first",
      request: { params: TaskParam, query: Pagination },
      responses: { 200: jsonResponse('Comments', listOf(CommentRead)), ...agentErrors, ...noTask },
    }),
    async (c) => {
      const scope = agentScope(requireAgent(c.var.principal));
      const page = c.req.valid('query');
      const { items, total } = await listTaskComments(c.var.db, scope, c.req.valid('param').task, page);
      return c.json({ items: items.map(commentToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/agent/tasks/{task}/comments',
      tags,
      summary: 'Comment on a task (workers: unassigned tasks or their own)',
      request: { params: TaskParam, body: jsonBody(CommentCreate) },
      responses: { 201: jsonResponse('Created', CommentRead), ...agentErrors, ...noTask, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const scope = agentScope(requireAgent(c.var.principal));
      const { comment, events } = await addTaskComment(
        c.var.db,
        c.var.audit,
        scope,
        c.req.valid('param').task,
        c.req.valid('json').body,
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(commentToRead(comment), 201);
    },
  );
