/**
 * Board webhooks: configuration and stored payloads (authenticated), and ingest (public,
 * signature-checked, rate limited per client IP and webhook).
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { encryptionKeys } from '../config';
import { openDatabase } from '../db/client';
import { PAYLOAD_STATUSES } from '../db/schema-edge';
import { clientIp } from '../middleware/auth';
import { validationHook } from '../middleware/errors';
import { boardViewer } from '../services/boards';
import { rateLimiterFor } from '../services/rate-limit';
import { enqueueDelivery } from '../services/webhook-delivery';
import { ingestWebhook, WEBHOOK_MAX_BYTES } from '../services/webhook-ingest';
import {
  createWebhook,
  deleteWebhook,
  getPayload,
  getWebhook,
  listPayloads,
  listWebhooks,
  updateWebhook,
  type Webhook,
  type WebhookPayload,
} from '../services/webhooks';
import type { AppEnv } from '../types';
import { publishActivity } from './publish';
import { authErrors, errorContent, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

const uuid = z.uuid({ error: 'must be a UUID' });
/** RFC 7230 token: the characters a header name may have. */
const headerName = z
  .string()
  .max(100)
  .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'must be a header name (an RFC 7230 token)')
  .refine((v) => !/^(authorization|cookie|host|content-length|content-type)$/i.test(v), 'cannot be a reserved header');

export const WebhookRead = z
  .object({
    id: uuid,
    board_id: uuid,
    description: z.string(),
    enabled: z.boolean(),
    agent_id: uuid.nullable(),
    has_secret: z.boolean(),
    signature_header: z.string().nullable(),
    endpoint_path: z.string(),
    endpoint_url: z.string(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('Webhook');

const WebhookFields = {
  description: z
    .string()
    .trim()
    .min(1)
    .max(2_000)
    .openapi({ description: 'What the payloads are and what to do with them' }),
  enabled: z.boolean().optional(),
  agent_id: uuid.nullable().optional().openapi({ description: 'Receives payloads instead of the board lead' }),
  secret: z
    .string()
    .min(16)
    .max(500)
    .nullable()
    .optional()
    .openapi({ description: 'HMAC-SHA256 signing secret; write-only (null removes it)' }),
  signature_header: headerName
    .nullable()
    .optional()
    .openapi({ description: 'Header carrying the signature; default X-Hub-Signature-256, then X-Webhook-Signature' }),
};
const WebhookCreate = z.object(WebhookFields).openapi('WebhookCreate');
const WebhookUpdate = z
  .object({ ...WebhookFields, description: WebhookFields.description.optional() })

  .openapi('WebhookUpdate');

export const PayloadSummary = z
  .object({
    id: uuid,
    webhook_id: uuid,
    board_id: uuid,
    delivery_id: z.string().nullable(),
    status: z.enum(PAYLOAD_STATUSES),
    attempts: z.number().int(),
    last_error: z.string().nullable(),
    encoding: z.enum(['json', 'text', 'base64']),
    byte_size: z.number().int(),
    content_type: z.string().nullable(),
    user_agent: z.string().nullable(),
    headers: z.record(z.string(), z.string()),
    source_ip: z.string().nullable(),
    received_at: timestamp,
    delivered_at: timestamp.nullable(),
  })
  .openapi('WebhookPayloadSummary');
export const PayloadRead = PayloadSummary.extend({
  payload: z.unknown().openapi({ description: 'JSON as sent; text as a string; other bytes base64' }),
}).openapi('WebhookPayload');

const IngestAccepted = z
  .object({
    ok: z.literal(true),
    board_id: z.string(),
    webhook_id: z.string(),
    payload_id: uuid,
    duplicate: z.boolean(),
  })
  .openapi('WebhookAccepted');

const BoardParam = z.object({ id: uuid });
const WebhookParam = z.object({ id: uuid, webhook_id: uuid });
const PayloadParam = z.object({ id: uuid, webhook_id: uuid, payload_id: uuid });
const PayloadFilter = Pagination.extend({ status: z.enum(PAYLOAD_STATUSES).optional() });

const tags = ['webhooks'];
const readers = { user: 'member', apiKey: 'read' } as const;
// Webhooks carry secrets and steer agents: admins only.
const admins = { user: 'admin', apiKey: 'admin' } as const;

export const endpointPath = (w: { boardId: string; id: string }) => `/api/v1/boards/${w.boardId}/webhooks/${w.id}`;

const webhookToRead = (w: Webhook, origin: string): z.infer<typeof WebhookRead> => ({
  id: w.id,
  board_id: w.boardId,
  description: w.description,
  enabled: w.enabled,
  agent_id: w.agentId,
  has_secret: w.secretCiphertext !== null,
  signature_header: w.signatureHeader,
  endpoint_path: endpointPath(w),
  endpoint_url: `${origin}${endpointPath(w)}`,
  created_at: w.createdAt.toISOString(),
  updated_at: w.updatedAt.toISOString(),
});

export const payloadSummary = (p: WebhookPayload): z.infer<typeof PayloadSummary> => ({
  id: p.id,
  webhook_id: p.webhookId,
  board_id: p.boardId,
  delivery_id: p.deliveryId,
  status: p.status as (typeof PAYLOAD_STATUSES)[number],
  attempts: p.attempts,
  last_error: p.lastError,
  encoding: p.encoding as 'json' | 'text' | 'base64',
  byte_size: p.byteSize,
  content_type: p.contentType,
  user_agent: p.userAgent,
  headers: p.headers as Record<string, string>,
  source_ip: p.sourceIp,
  received_at: p.createdAt.toISOString(),
  delivered_at: p.deliveredAt?.toISOString() ?? null,
});

const origin = (url: string) => new URL(url).origin;

/** `fields` as JSON with `payload` spliced in as stored: a JavaScript round trip would round big numbers. */
export function withStoredPayload(fields: Record<string, unknown>, payloadJson: string): Response {
  const head = JSON.stringify(fields);
  return new Response(`${head.slice(0, -1)},"payload":${payloadJson}}`, {
    headers: { 'Content-Type': 'application/json' },
  });
}

export const webhookRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/webhooks',
      tags,
      summary: "A board's webhooks",
      request: { params: BoardParam, query: Pagination },
      responses: {
        200: jsonResponse('Webhooks', listOf(WebhookRead)),
        ...authErrors,
        404: errorContent('No such board'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const page = c.req.valid('query');
      const { items, total } = await listWebhooks(
        c.var.db,
        boardViewer(principal, organizationId),
        c.req.valid('param').id,
        page,
      );
      return c.json({ items: items.map((w) => webhookToRead(w, origin(c.req.url))), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/boards/{id}/webhooks',
      tags,
      summary: 'Create a webhook on a board',
      request: { params: BoardParam, body: jsonBody(WebhookCreate) },
      responses: {
        201: jsonResponse('Created', WebhookRead),
        ...authErrors,
        404: errorContent('No such board'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, admins);
      const { webhook, events } = await createWebhook(
        c.var.db,
        c.var.audit,
        encryptionKeys(c.var.settings),
        boardViewer(principal, organizationId, 'write'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(webhookToRead(webhook, origin(c.req.url)), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/webhooks/{webhook_id}',
      tags,
      summary: 'One webhook (never its secret)',
      request: { params: WebhookParam },
      responses: { 200: jsonResponse('Webhook', WebhookRead), ...authErrors, 404: errorContent('No such webhook') },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { id, webhook_id } = c.req.valid('param');
      const webhook = await getWebhook(c.var.db, boardViewer(principal, organizationId), id, webhook_id);
      return c.json(webhookToRead(webhook, origin(c.req.url)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/boards/{id}/webhooks/{webhook_id}',
      tags,
      summary: 'Change a webhook (a new secret replaces the old one; null removes it)',
      request: { params: WebhookParam, body: jsonBody(WebhookUpdate) },
      responses: {
        200: jsonResponse('Updated', WebhookRead),
        ...authErrors,
        404: errorContent('No such webhook'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, admins);
      const { id, webhook_id } = c.req.valid('param');
      const { webhook, events } = await updateWebhook(
        c.var.db,
        c.var.audit,
        encryptionKeys(c.var.settings),
        boardViewer(principal, organizationId, 'write'),
        id,
        webhook_id,
        c.req.valid('json'),
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(webhookToRead(webhook, origin(c.req.url)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/boards/{id}/webhooks/{webhook_id}',
      tags,
      summary: 'Delete a webhook and its stored payloads',
      request: { params: WebhookParam },
      responses: { 204: { description: 'Deleted' }, ...authErrors, 404: errorContent('No such webhook') },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, admins);
      const { id, webhook_id } = c.req.valid('param');
      const { events } = await deleteWebhook(
        c.var.db,
        c.var.audit,
        boardViewer(principal, organizationId, 'write'),
        id,
        webhook_id,
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/webhooks/{webhook_id}/payloads',
      tags,
      summary: "A webhook's stored payloads, newest first, without bodies",
      request: { params: WebhookParam, query: PayloadFilter },
      responses: {
        200: jsonResponse('Payloads', listOf(PayloadSummary)),
        ...authErrors,
        404: errorContent('No such webhook'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { id, webhook_id } = c.req.valid('param');
      const { status, ...page } = c.req.valid('query');
      const { items, total } = await listPayloads(c.var.db, boardViewer(principal, organizationId), id, webhook_id, {
        status,
        ...page,
      });
      return c.json({ items: items.map(payloadSummary), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/webhooks/{webhook_id}/payloads/{payload_id}',
      tags,
      summary: 'One stored payload with its body',
      request: { params: PayloadParam },
      responses: { 200: jsonResponse('Payload', PayloadRead), ...authErrors, 404: errorContent('No such payload') },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { id, webhook_id, payload_id } = c.req.valid('param');
      const p = await getPayload(c.var.db, boardViewer(principal, organizationId), id, webhook_id, payload_id);
      // Raw JSON text: the typed c.json() cannot splice it in. The schema still describes the shape.
      return withStoredPayload(payloadSummary(p), p.payloadJson) as never;
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/boards/{id}/webhooks/{webhook_id}',
      tags,
      summary: 'Deliver a webhook event (public; HMAC-signed when the webhook has a secret)',
      description: `Any content type, at most ${WEBHOOK_MAX_BYTES} bytes. Signature: hex HMAC-SHA256 of the raw body, optionally \`sha256=\`-prefixed, in the configured header, X-Hub-Signature-256 or X-Webhook-Signature. A delivery id (X-GitHub-Delivery, X-Webhook-Id or Idempotency-Key) seen before answers 200 with the original payload id.`,
      security: [],
      request: { params: z.object({ id: z.string(), webhook_id: z.string() }) },
      responses: {
        202: jsonResponse('Stored; delivery to the agent follows', IngestAccepted),
        200: jsonResponse('A repeated delivery id: nothing new stored', IngestAccepted),
        403: errorContent('Signature missing or wrong'),
        404: errorContent('No such webhook on this board'),
        408: errorContent('The body arrived too slowly'),
        410: errorContent('The webhook is disabled'),
        413: errorContent('Body larger than 1 MiB'),
        423: errorContent('The organization is locked'),
        429: errorContent('Rate limited (Retry-After, RateLimit-* headers)'),
      },
    }),
    async (c) => {
      const settings = c.var.settings;
      const { id, webhook_id } = c.req.valid('param');
      const db = await openDatabase(settings);
      const result = await ingestWebhook(
        { db, limiter: rateLimiterFor(c.env, settings), settings, keys: encryptionKeys(settings) },
        {
          boardId: id,
          webhookId: webhook_id,
          ip: clientIp(c),
          userAgent: c.req.header('User-Agent') ?? null,
          requestId: c.var.requestId,
          headers: c.req.raw.headers,
          body: c.req.raw.body,
        },
      );
      if (result.created) c.executionCtx.waitUntil(enqueueDelivery(c.env, result.payloadId));
      const body = {
        ok: true as const,
        board_id: id,
        webhook_id,
        payload_id: result.payloadId,
        duplicate: !result.created,
      };
      return c.json(body, result.created ? 202 : 200);
    },
  );
