import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { authorize } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import { notifyApprovalResolved } from '../services/agent-messages';
import {
  APPROVAL_STATUSES,
  type Approval,
  createApproval,
  listApprovals,
  resolveApproval,
} from '../services/approvals';
import { boardAccess, boardViewer } from '../services/boards';
import type { AppEnv } from '../types';
import { publishActivity } from './publish';
import { authErrors, errorContent, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

const uuid = z.uuid({ error: 'must be a UUID' });

export const ApprovalRead = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    board_id: z.uuid(),
    task_ids: z.array(z.uuid()),
    action_type: z.string(),
    payload: z.record(z.string(), z.unknown()),
    confidence: z.number().int(),
    rubric_scores: z.record(z.string(), z.number()).nullable(),
    status: z.enum(APPROVAL_STATUSES),
    requested_by_type: z.string(),
    requested_by_id: z.uuid().nullable(),
    resolved_by_user_id: z.uuid().nullable(),
    resolution_note: z.string().nullable(),
    resolved_at: timestamp.nullable(),
    created_at: timestamp,
  })
  .openapi('Approval');

export const ApprovalCreate = z
  .object({
    task_ids: z.array(uuid).min(1).max(50),
    action_type: z.string().trim().min(1).max(100),
    payload: z
      .looseObject({ reason: z.string().trim().min(1).max(5000) })
      .openapi({ description: 'Free-form; must carry a `reason`' }),
    confidence: z.number().int().min(0).max(100),
    rubric_scores: z.record(z.string().max(100), z.number()).nullable().optional(),
  })
  .openapi('ApprovalCreate');

export const ApprovalFilter = Pagination.extend({ status: z.enum(APPROVAL_STATUSES).optional() });

const Resolution = z.object({ note: z.string().max(5000).nullable().optional() }).openapi('ApprovalResolution');

export const approvalToRead = (a: Approval): z.infer<typeof ApprovalRead> => ({
  id: a.id,
  organization_id: a.organizationId,
  board_id: a.boardId,
  task_ids: a.taskIds,
  action_type: a.actionType,
  payload: a.payload as Record<string, unknown>,
  confidence: a.confidence,
  rubric_scores: (a.rubricScores as Record<string, number> | null) ?? null,
  status: a.status as z.infer<typeof ApprovalRead>['status'],
  requested_by_type: a.requestedByType,
  requested_by_id: a.requestedById,
  resolved_by_user_id: a.resolvedByUserId,
  resolution_note: a.resolutionNote,
  resolved_at: a.resolvedAt?.toISOString() ?? null,
  created_at: a.createdAt.toISOString(),
});

export const toNewApproval = (body: z.infer<typeof ApprovalCreate>) => ({
  taskIds: body.task_ids,
  actionType: body.action_type,
  payload: body.payload,
  confidence: body.confidence,
  rubricScores: body.rubric_scores ?? null,
});

const BoardParam = z.object({ id: uuid });
const ApprovalParams = z.object({ id: uuid, approval: uuid });

const tags = ['approvals'];
const readers = { user: 'member', apiKey: 'read' } as const;
const requesters = { user: 'member', apiKey: 'write' } as const;
const resolvers = { user: 'member', apiKey: 'approvals' } as const;

/** The resolution body is optional: an empty body counts as none, whatever its Content-Type says. */
const emptyBodyIsNone: MiddlewareHandler<AppEnv> = async (c, next) => {
  const raw = c.req.raw;
  if (raw.headers.get('content-type') && !(await raw.clone().text()).trim()) {
    const headers = new Headers(raw.headers);
    headers.delete('content-type');
    c.req.raw = new Request(raw.url, { method: raw.method, headers });
  }
  await next();
};

function resolveRoute(decision: 'approve' | 'reject') {
  return createRoute({
    middleware: [emptyBodyIsNone] as const,
    method: 'post',
    path: `/api/v1/boards/{id}/approvals/{approval}/${decision}`,
    tags,
    summary: decision === 'approve' ? 'Approve a pending approval' : 'Reject a pending approval',
    description:
      'Operators with write access to the board, or API keys with the `approvals` scope. The board lead is told.',
    request: {
      params: ApprovalParams,
      body: { required: false, content: { 'application/json': { schema: Resolution } } },
    },
    responses: {
      200: jsonResponse('Resolved', ApprovalRead),
      ...authErrors,
      404: errorContent('No such board or approval'),
      409: errorContent('`approval_not_pending`: already resolved'),
      422: errorContent('Invalid'),
    },
  });
}

type ResolveInput = { out: { param: z.infer<typeof ApprovalParams>; json: z.infer<typeof Resolution> } };

/** Approve and reject differ only in the outcome they record. */
async function resolve(c: Context<AppEnv, string, ResolveInput>, outcome: 'approved' | 'rejected') {
  const { principal, organizationId } = authorize(c.var.principal, resolvers);
  const { id, approval: approvalId } = c.req.valid('param');
  const { approval, events } = await resolveApproval(
    c.var.db,
    c.var.audit,
    boardAccess(principal, organizationId),
    id,
    approvalId,
    outcome,
    c.req.valid('json').note ?? null,
  );
  c.set('audited', true);
  publishActivity(c, events);
  await notifyApprovalResolved(c.env, c.var.db, c.var.settings, events);
  return c.json(approvalToRead(approval), 200);
}

export const approvalRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/approvals',
      tags,
      summary: "List a board's approvals, newest first",
      request: { params: BoardParam, query: ApprovalFilter },
      responses: {
        200: jsonResponse('Approvals', listOf(ApprovalRead)),
        ...authErrors,
        404: errorContent('No such board'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { status, ...page } = c.req.valid('query');
      const { items, total } = await listApprovals(
        c.var.db,
        boardViewer(principal, organizationId),
        c.req.valid('param').id,
        { status, ...page },
      );
      return c.json({ items: items.map(approvalToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/boards/{id}/approvals',
      tags,
      summary: 'Request an approval for tasks of the board',
      request: { params: BoardParam, body: jsonBody(ApprovalCreate) },
      responses: {
        201: jsonResponse('Created', ApprovalRead),
        ...authErrors,
        404: errorContent('No such board'),
        409: errorContent('`approval_pending`: a task already has a pending approval'),
        422: errorContent('Invalid (also: a task not on this board)'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, requesters);
      const { approval, events } = await createApproval(
        c.var.db,
        c.var.audit,
        boardAccess(principal, organizationId),
        c.req.valid('param').id,
        toNewApproval(c.req.valid('json')),
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(approvalToRead(approval), 201);
    },
  )
  .openapi(resolveRoute('approve'), (c) => resolve(c, 'approved'))
  .openapi(resolveRoute('reject'), (c) => resolve(c, 'rejected'));
