/**
 * Live events: dashboards subscribe over a WebSocket to their organization's event hub
 * (durable-objects/event-hub.ts) instead of polling. A ticket from `POST /api/v1/events/ticket`
 * is the upgrade's credential, because browsers cannot set headers on a WebSocket.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { authorize } from '../auth/policy';
import { openDatabase } from '../db/client';
import { AppError } from '../lib/errors';
import { log } from '../lib/log';
import { clientIp } from '../middleware/auth';
import { validationHook } from '../middleware/errors';
import { auditInsert } from '../services/audit';
import {
  EVENT_TICKET_MAX_LENGTH,
  type EventTicketGrant,
  issueEventTicket,
  redeemEventTicket,
} from '../services/event-tickets';
import { connectToHub } from '../services/events';
import type { AppEnv } from '../types';
import { authErrors, errorContent, jsonResponse, timestamp } from './schemas';

const TicketRequest = z.object({
  board_id: z
    .uuid({ error: 'must be a UUID' })
    .optional()
    .openapi({ description: 'Subscribe to this board only; omit for every board (needs read access to all)' }),
});

const TicketRead = z
  .object({
    ticket: z.string().openapi({ description: 'Pass as `?ticket=` to GET /api/v1/events; single use' }),
    expires_at: timestamp,
  })
  .openapi('EventTicket');

export const SubscribeQuery = z.object({
  ticket: z
    .string()
    .max(EVENT_TICKET_MAX_LENGTH)
    .optional()
    .openapi({ description: 'From POST /api/v1/events/ticket (required; 401 without it)' }),
  board_id: z.uuid({ error: 'must be a UUID' }).optional().openapi({ description: "Only this board's events" }),
  after_id: z.coerce
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .openapi({ description: 'Replay buffered events after this id (the last one the client saw) before going live' }),
});

const tags = ['events'];

/** Browsers send Origin on every WebSocket upgrade: only the dashboard's own and CORS_ORIGINS may open one. */
function originAllowed(c: Context<AppEnv>): boolean {
  const origin = c.req.header('Origin');
  if (origin === undefined) return true; // Not a browser: nothing to hijack.
  return origin === new URL(c.req.url).origin || c.var.settings.CORS_ORIGINS.includes(origin);
}

const invalidTicket = () =>
  new AppError(401, 'unauthenticated', 'Missing, used or expired ticket: get one from POST /api/v1/events/ticket.');

/**
 * The checks every live-event upgrade passes (this stream and a gateway's): a WebSocket upgrade,
 * from an allowed Origin, with an unused, unexpired ticket for `boardId` (null: organization-wide)
 * whose principal still holds its credential. A bad ticket is logged and audited.
 */
export async function redeemUpgrade(
  c: Context<AppEnv>,
  ticket: string | undefined,
  boardId: string | null,
): Promise<EventTicketGrant> {
  if (c.req.header('Upgrade')?.toLowerCase() !== 'websocket') {
    throw new AppError(426, 'upgrade_required', 'Open this URL as a WebSocket.', { headers: { Upgrade: 'websocket' } });
  }
  if (!originAllowed(c)) {
    // Another site's page riding on the user's ticket (cross-site WebSocket hijacking).
    throw new AppError(403, 'origin_not_allowed', 'This origin may not open the events socket.');
  }
  const db = await openDatabase(c.var.settings);
  const grant = ticket ? await redeemEventTicket(db, ticket, boardId) : null;
  if (grant) return grant;
  const ip = clientIp(c);
  log('warn', 'auth.failed', { reason: 'invalid_event_ticket', ip, request_id: c.var.requestId });
  await auditInsert(
    db,
    {
      organizationId: null,
      actorType: 'anonymous',
      actorId: null,
      ip,
      userAgent: c.req.header('User-Agent') ?? null,
      requestId: c.var.requestId,
    },
    { action: 'auth.failed', success: false, details: { reason: 'invalid_event_ticket', path: c.req.path } },
  );
  throw invalidTicket();
}

/** A DO's 101 as the Worker's own response: the DO's headers are immutable and the middleware add theirs. */
export function upgradedResponse(upgraded: Response, what: string): Response {
  if (upgraded.status !== 101 || !upgraded.webSocket)
    throw new Error(`${what} refused the upgrade with ${upgraded.status}`);
  return new Response(null, { status: 101, webSocket: upgraded.webSocket });
}

export const eventRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/events/ticket',
      tags,
      summary: 'Get a single-use ticket (valid about 30 s) to open the live-events WebSocket',
      request: { body: { required: false, content: { 'application/json': { schema: TicketRequest } } } },
      responses: {
        201: jsonResponse('Ticket', TicketRead),
        ...authErrors,
        404: errorContent('No such board among those you can read'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, { user: 'member', apiKey: 'read' });
      const boardId = c.req.valid('json').board_id ?? null;
      const ticket = await issueEventTicket(c.var.db, c.var.audit, principal, organizationId, boardId);
      c.set('audited', true);
      return c.json({ ticket: ticket.ticket, expires_at: ticket.expiresAt.toISOString() }, 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/events',
      tags,
      summary: 'Subscribe to live events over a WebSocket (the ticket is the credential)',
      description: [
        'Messages: `{"type":"event","event":{...}}` (an activity event; its `id` is the sequence),',
        '`{"type":"resync","after_id":n}` when the hub no longer holds everything after `after_id`',
        '(fetch `GET /api/v1/activity?after_id=`), then `{"type":"ready","last_id":n|null}` after the replay.',
        'Send the text `ping` to get `pong`. Close codes: 4401 credential revoked, 4423 organization locked.',
      ].join(' '),
      // Public in the sense of no Authorization header: browsers cannot send one on a WebSocket.
      security: [],
      request: { query: SubscribeQuery },
      responses: {
        101: { description: 'Switching to the WebSocket protocol' },
        401: errorContent('Missing, used or expired ticket'),
        403: errorContent('Origin not allowed'),
        426: errorContent('Not a WebSocket upgrade'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const query = c.req.valid('query');
      const grant = await redeemUpgrade(c, query.ticket, query.board_id ?? null);
      return upgradedResponse(await connectToHub(c.env, grant, query.after_id ?? null), 'event hub');
    },
  );
