import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { AppError } from '../lib/errors';
import { validationHook } from '../middleware/errors';
import { listActivity, parseCursor } from '../services/activity-feed';
import { boardViewer } from '../services/boards';
import type { AppEnv } from '../types';
import { authErrors, errorContent, jsonResponse, timestamp } from './schemas';

const uuid = z.uuid({ error: 'must be a UUID' });

export const ActivityRead = z
  .object({
    id: z.number().int().openapi({ description: 'The event sequence number (ascending in commit order)' }),
    organization_id: z.uuid(),
    board_id: z.uuid().nullable(),
    task_id: z.uuid().nullable(),
    agent_id: z.uuid().nullable(),
    type: z.string().openapi({ example: 'task.status_changed' }),
    message: z.string(),
    actor_type: z.string(),
    actor_id: z.uuid().nullable(),
    payload: z.record(z.string(), z.unknown()),
    created_at: timestamp,
  })
  .openapi('ActivityEvent');

const ActivityFilter = z.object({
  board_id: uuid.optional(),
  task_id: uuid.optional(),
  agent_id: uuid.optional(),
  type: z.string().max(100).optional().openapi({ description: 'Type prefix: `task.` or `task.status_changed`' }),
  after_id: z
    .string()
    .optional()
    .openapi({ description: 'Events with a larger id, oldest first: fill a gap after the last id seen' }),
  cursor: z.string().optional().openapi({ description: '`next_cursor` of the previous page (newest first)' }),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

const ActivityPage = z
  .object({
    items: z.array(ActivityRead),
    next_cursor: z.string().nullable().openapi({
      description: 'More events follow: pass it as `cursor` (or, when reading with after_id, as `after_id`)',
    }),
  })
  .openapi('ActivityPage');

export const activityRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook }).openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/activity',
    tags: ['activity'],
    summary: 'The activity feed of the boards the caller may read',
    description:
      'Newest first with `cursor`, or oldest first with `after_id` (what live-event clients use to fill gaps).',
    request: { query: ActivityFilter },
    responses: { 200: jsonResponse('Events', ActivityPage), ...authErrors, 422: errorContent('Invalid') },
  }),
  async (c) => {
    const { principal, organizationId } = authorize(c.var.principal, { user: 'member', apiKey: 'read' });
    const q = c.req.valid('query');
    if (q.after_id !== undefined && q.cursor !== undefined) {
      throw new AppError(422, 'validation_failed', 'Use either after_id or cursor, not both.', {
        details: { issues: [{ path: 'cursor', message: 'cannot be combined with after_id' }] },
      });
    }
    const { items, nextCursor } = await listActivity(c.var.db, boardViewer(principal, organizationId), {
      boardId: q.board_id,
      taskId: q.task_id,
      agentId: q.agent_id,
      type: q.type,
      afterId: parseCursor('after_id', q.after_id),
      before: parseCursor('cursor', q.cursor),
      limit: q.limit,
    });
    return c.json({ items, next_cursor: nextCursor }, 200);
  },
);
