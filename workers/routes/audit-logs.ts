import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { AppError } from '../lib/errors';
import { validationHook } from '../middleware/errors';
import {
  ACTOR_TYPES,
  type AuditLogFilters,
  type AuditLogItem,
  listAuditLogs,
  startAuditLogExport,
} from '../services/audit-logs';
import type { AppEnv } from '../types';
import { authErrors, errorContent, jsonResponse, timestamp } from './schemas';

const AuditLogRead = z
  .object({
    id: z.uuid(),
    created_at: timestamp,
    organization_id: z.uuid().nullable(),
    actor_type: z.enum(ACTOR_TYPES),
    actor_id: z.string().nullable(),
    action: z.string().openapi({ example: 'api_key.create' }),
    success: z.boolean(),
    target_type: z.string().nullable(),
    target_id: z.string().nullable(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    request_id: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
  })
  .openapi('AuditLog');

const AuditLogPage = z
  .object({
    items: z.array(AuditLogRead),
    next_cursor: z
      .string()
      .nullable()
      .openapi({ description: 'Pass as `cursor` for the next (older) page; null on the last page' }),
  })
  .openapi('AuditLogPage');

const text = (max: number) => z.string().trim().min(1).max(max).optional();
const datetime = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time' }).optional();

const Filters = z.object({
  actor_type: z.enum(ACTOR_TYPES).optional(),
  actor_id: text(200),
  action: text(100).openapi({ description: 'Prefix match: `api_key.` matches `api_key.create`' }),
  target_type: text(100),
  target_id: text(200),
  success: z.enum(['true', 'false']).optional(),
  since: datetime.openapi({ description: 'Rows created at or after this instant' }),
  until: datetime.openapi({ description: 'Rows created before this instant' }),
});

const ListQuery = Filters.extend({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional().openapi({ description: 'next_cursor of the previous page' }),
});

function toFilters(q: z.infer<typeof Filters>): AuditLogFilters {
  if (q.since && q.until && Date.parse(q.since) > Date.parse(q.until)) {
    throw new AppError(422, 'validation_failed', 'The request is not valid.', {
      details: { location: 'query', issues: [{ path: 'until', message: 'must not be before since' }] },
    });
  }
  return {
    actorType: q.actor_type,
    actorId: q.actor_id,
    action: q.action,
    targetType: q.target_type,
    targetId: q.target_id,
    success: q.success === undefined ? undefined : q.success === 'true',
    since: q.since ? new Date(q.since) : undefined,
    until: q.until ? new Date(q.until) : undefined,
  };
}

const toRead = (row: AuditLogItem): z.infer<typeof AuditLogRead> => ({
  id: row.id,
  created_at: row.createdAt.toISOString(),
  organization_id: row.organizationId,
  actor_type: row.actorType as z.infer<typeof AuditLogRead>['actor_type'],
  actor_id: row.actorId,
  action: row.action,
  success: row.success,
  target_type: row.targetType,
  target_id: row.targetId,
  ip: row.ip,
  user_agent: row.userAgent,
  request_id: row.requestId,
  details: (row.details ?? {}) as Record<string, unknown>,
});

const tags = ['audit-logs'];
const adminOnly = { user: 'admin', apiKey: 'admin' } as const;

export const auditLogRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/audit-logs',
      tags,
      summary: "The organization's audit log, newest first, with cursor pagination",
      request: { query: ListQuery },
      responses: {
        200: jsonResponse('One page of audit rows', AuditLogPage),
        ...authErrors,
        422: errorContent('Invalid filter or cursor'),
      },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, adminOnly);
      const query = c.req.valid('query');
      const { items, nextCursor } = await listAuditLogs(c.var.db, organizationId, toFilters(query), {
        limit: query.limit,
        cursor: query.cursor,
      });
      c.header('Cache-Control', 'no-store');
      return c.json({ items: items.map(toRead), next_cursor: nextCursor }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/audit-logs/export.csv',
      tags,
      summary: 'Download the filtered audit log as CSV (the export itself is audited)',
      request: { query: Filters },
      responses: {
        200: {
          description: 'CSV with a header row, newest first',
          content: { 'text/csv': { schema: z.string() } },
        },
        ...authErrors,
        422: errorContent('Invalid filter'),
      },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, adminOnly);
      const stream = await startAuditLogExport(c.var.db, c.var.audit, organizationId, toFilters(c.req.valid('query')));
      c.set('audited', true);
      return c.body(stream, 200, {
        'Content-Type': 'text/csv; charset=utf-8',
        'Content-Disposition': 'attachment; filename="audit-logs.csv"',
        'Cache-Control': 'no-store',
      });
    },
  );
