import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import {
  type Board,
  type BoardFields,
  boardViewer,
  createBoardWithActivity,
  deleteBoard,
  getBoard,
  listBoards,
  updateBoard,
} from '../services/boards';
import { boardSnapshot, type SnapshotTask } from '../services/snapshot';
import type { AppEnv } from '../types';
import { AgentRead, agentToRead } from './agents';
import { ApprovalRead, approvalToRead } from './approvals';
import { MemoryRead, memoryToRead } from './board-memory';
import { publishActivity } from './publish';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

export const BoardRead = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    name: z.string(),
    description: z.string(),
    group_id: z.uuid().nullable(),
    gateway_id: z.uuid().nullable(),
    require_approval_for_done: z.boolean(),
    require_review_before_done: z.boolean(),
    comment_required_for_review: z.boolean(),
    block_status_changes_with_pending_approval: z.boolean(),
    only_lead_can_change_status: z.boolean(),
    max_agents: z.number().int().openapi({ description: 'Worker agents allowed on the board, the lead not counted' }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('Board');

const uuid = z.uuid({ error: 'must be a UUID' });

const BoardSettings = {
  description: z.string().max(2000).optional(),
  group_id: uuid.nullable().optional().openapi({ description: 'A board group of the same organization, or null' }),
  gateway_id: uuid
    .nullable()
    .optional()
    .openapi({ description: 'The gateway its agents are provisioned on (same organization), or null' }),
  require_approval_for_done: z.boolean().optional(),
  require_review_before_done: z.boolean().optional(),
  comment_required_for_review: z.boolean().optional(),
  block_status_changes_with_pending_approval: z.boolean().optional(),
  only_lead_can_change_status: z.boolean().optional(),
  max_agents: z.number().int().min(0).max(1000).optional(),
};

const BoardCreate = z.object({ name: z.string().trim().min(1).max(200), ...BoardSettings }).openapi('BoardCreate');
const BoardUpdate = z
  .object({ name: z.string().trim().min(1).max(200).optional(), ...BoardSettings })
  .openapi('BoardUpdate');

const BoardFilter = Pagination.extend({ group_id: uuid.optional() });

export const boardToRead = (b: Board): z.infer<typeof BoardRead> => ({
  id: b.id,
  organization_id: b.organizationId,
  name: b.name,
  description: b.description,
  group_id: b.groupId,
  gateway_id: b.gatewayId,
  require_approval_for_done: b.requireApprovalForDone,
  require_review_before_done: b.requireReviewBeforeDone,
  comment_required_for_review: b.commentRequiredForReview,
  block_status_changes_with_pending_approval: b.blockStatusChangesWithPendingApproval,
  only_lead_can_change_status: b.onlyLeadCanChangeStatus,
  max_agents: b.maxAgents,
  created_at: b.createdAt.toISOString(),
  updated_at: b.updatedAt.toISOString(),
});

const SnapshotTaskRead = z
  .object({
    id: z.uuid(),
    board_id: z.uuid(),
    title: z.string(),
    description: z.string(),
    status: z.string(),
    priority: z.string(),
    due_at: timestamp.nullable(),
    assignee_agent_id: z.uuid().nullable(),
    assignee: z.object({ id: z.uuid(), name: z.string() }).nullable(),
    tags: z.array(z.string()),
    custom_fields: z.record(z.string(), z.unknown()),
    version: z.number().int(),
    done_at: timestamp.nullable(),
    approval_counts: z.object({ pending: z.number().int(), approved: z.number().int() }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('SnapshotTask');

const BoardSnapshotRead = z
  .object({
    board: BoardRead,
    tasks: z.array(SnapshotTaskRead),
    agents: z.array(AgentRead),
    pending_approvals: z.array(ApprovalRead),
    chat: z.array(MemoryRead).openapi({ description: 'The 50 newest chat messages, newest first' }),
  })
  .openapi('BoardSnapshot');

const snapshotTaskToRead = (t: SnapshotTask): z.infer<typeof SnapshotTaskRead> => ({
  id: t.id,
  board_id: t.boardId,
  title: t.title,
  description: t.description,
  status: t.status,
  priority: t.priority,
  due_at: t.dueAt?.toISOString() ?? null,
  assignee_agent_id: t.assigneeAgentId,
  assignee: t.assignee,
  tags: t.tags,
  custom_fields: t.customFields as Record<string, unknown>,
  version: t.version,
  done_at: t.doneAt?.toISOString() ?? null,
  approval_counts: t.approvalCounts,
  created_at: t.createdAt.toISOString(),
  updated_at: t.updatedAt.toISOString(),
});

const tags = ['boards'];
const readers = { user: 'member', apiKey: 'read' } as const;
const creators = { user: 'admin', apiKey: 'write' } as const;
/** Deleting a board deletes everything on it: admins, and API keys with the admin scope. */
/** Deleting a board or changing its rules (a `write` key must not switch off its own approval gate). */
const admins = { user: 'admin', apiKey: 'admin' } as const;
const notFound = { 404: errorContent('No such board') } as const;

export const boardRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/boards',
      tags,
      summary: 'Create a board',
      request: { body: jsonBody(BoardCreate) },
      responses: {
        201: jsonResponse('Created', BoardRead),
        ...authErrors,
        422: errorContent('Invalid (also: group_id of another organization)'),
      },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, creators);
      const body = c.req.valid('json') as BoardFields & { name: string };
      const { board, events } = await createBoardWithActivity(c.var.db, c.var.audit, organizationId, body);
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(boardToRead(board), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards',
      tags,
      summary: 'List the boards the caller may read',
      request: { query: BoardFilter },
      responses: { 200: jsonResponse('Boards', listOf(BoardRead)), ...authErrors },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { group_id, ...page } = c.req.valid('query');
      const { items, total } = await listBoards(c.var.db, boardViewer(principal, organizationId), {
        ...page,
        groupId: group_id,
      });
      return c.json({ items: items.map(boardToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}',
      tags,
      summary: 'Read one board',
      request: { params: IdParam },
      responses: { 200: jsonResponse('The board', BoardRead), ...authErrors, ...notFound },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const board = await getBoard(c.var.db, boardViewer(principal, organizationId), c.req.valid('param').id);
      return c.json(boardToRead(board), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/boards/{id}',
      tags,
      summary: "Change a board's name, description, group, rules or worker cap",
      request: { params: IdParam, body: jsonBody(BoardUpdate) },
      responses: {
        200: jsonResponse('Updated', BoardRead),
        ...authErrors,
        ...notFound,
        422: errorContent('Invalid (also: group_id of another organization)'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, admins);
      const { board, events } = await updateBoard(
        c.var.db,
        c.var.audit,
        boardViewer(principal, organizationId, 'write'),
        c.req.valid('param').id,
        c.req.valid('json') as BoardFields,
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(boardToRead(board), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/boards/{id}',
      tags,
      summary: 'Delete a board and everything on it (tasks, agents, approvals, memory) in one statement',
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, ...authErrors, ...notFound },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, admins);
      const { events } = await deleteBoard(
        c.var.db,
        c.var.audit,
        boardViewer(principal, organizationId, 'write'),
        c.req.valid('param').id,
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/snapshot',
      tags,
      summary: "The board's view model in one round trip",
      description:
        'The board, its tasks (with assignee and approval counts), agents, pending approvals and recent chat.',
      request: { params: IdParam },
      responses: { 200: jsonResponse('The snapshot', BoardSnapshotRead), ...authErrors, ...notFound },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const snap = await boardSnapshot(c.var.db, boardViewer(principal, organizationId), c.req.valid('param').id);
      return c.json(
        {
          board: boardToRead(snap.board),
          tasks: snap.tasks.map(snapshotTaskToRead),
          agents: snap.agents.map(agentToRead),
          pending_approvals: snap.pendingApprovals.map(approvalToRead),
          chat: snap.chat.map(memoryToRead),
        },
        200,
      );
    },
  );
