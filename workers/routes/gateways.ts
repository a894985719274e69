/**
 * OpenClaw gateways: configuration (org admins; the token is write-only), the connectivity check,
 * session status, and the gateway's live events. Calls through the session: routes/gateway-relay.ts.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { encryptionKeys } from '../config';
import { openDatabase } from '../db/client';
import { AppError } from '../lib/errors';
import { validationHook } from '../middleware/errors';
import { forgetSession, sessionStatus, startSession, subscribeToSession } from '../services/gateway-sessions';
import {
  checkBeforeSaving,
  checkGatewayUrl,
  createGateway,
  deleteGateway,
  type Gateway,
  type GatewayFields,
  gatewayToken,
  getGateway,
  listGateways,
  testConnectivity,
  updateGateway,
} from '../services/gateways';
import type { AppEnv } from '../types';
import { redeemUpgrade, SubscribeQuery, upgradedResponse } from './events';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

const tags = ['gateways'];
const readers = { user: 'member', apiKey: 'read' } as const;
// Gateways run the agents and hold a token with admin scopes: configuring them is for admins.
const admins = { user: 'admin', apiKey: 'admin' } as const;

export const GatewayRead = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    name: z.string(),
    url: z.string(),
    has_token: z.boolean().openapi({ description: 'Whether a token is stored (the token is never returned)' }),
    has_device_token: z.boolean().openapi({ description: 'Whether the gateway issued this deployment a device token' }),
    workspace_root: z.string().nullable(),
    allow_insecure_tls: z.boolean(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('Gateway');

export const SessionStatus = z
  .object({
    status: z.enum(['idle', 'connecting', 'connected', 'disconnected', 'pairing_required', 'stopped']),
    connected: z.boolean(),
    since: timestamp.nullable(),
    protocol: z.number().int().nullable(),
    server_version: z.string().nullable(),
    connection_id: z.string().nullable(),
    methods: z.number().int().openapi({ description: 'How many methods the gateway advertised' }),
    last_error: z.object({ kind: z.string(), message: z.string(), at: timestamp.nullable() }).nullable(),
    reconnect_attempts: z.number().int(),
    next_attempt_at: timestamp.nullable(),
    stop_reason: z.string().nullable().openapi({ description: 'deleted, organization_locked or emergency_shutdown' }),
    pairing: z
      .object({ device_id: z.string(), request_id: z.string().nullable(), command: z.string() })
      .nullable()
      .openapi({ description: 'While pairing_required: the command the gateway owner runs to approve this device' }),
    subscribers: z.number().int(),
    pending_jobs: z.number().int(),
  })
  .openapi('GatewaySessionStatus');

const GatewayWithStatus = GatewayRead.extend({ session: SessionStatus }).openapi('GatewayWithSession');

const name = z.string().trim().min(1).max(200);
const url = z.string().trim().max(2_000).openapi({ example: 'wss://gateway.example.com' });
const token = z.string().min(1).max(4_096).openapi({ description: 'Gateway token; write-only' });
const GatewayCreate = z
  .object({
    name,
    url,
    token: token.nullable().optional(),
    workspace_root: z
      .string()
      .trim()
      .min(1)
      .max(1_000)
      .nullable()
      .optional()
      .openapi({ description: "Where agent workspaces go on the gateway host; null: the gateway's default" }),
    allow_insecure_tls: z.boolean().optional(),
  })
  .openapi('GatewayCreate');
const GatewayUpdate = GatewayCreate.partial().openapi('GatewayUpdate');
const GatewayTest = z.object({ url, token: token.nullable().optional() }).openapi('GatewayTest');
const TestResult = z
  .object({ ok: z.literal(true), protocol: z.number().int(), server_version: z.string(), methods: z.number().int() })
  .openapi('GatewayTestResult');

export const gatewayToRead = (g: Gateway): z.infer<typeof GatewayRead> => ({
  id: g.id,
  organization_id: g.organizationId,
  name: g.name,
  url: g.url,
  has_token: g.tokenCiphertext !== null,
  has_device_token: g.deviceTokenCiphertext !== null,
  workspace_root: g.workspaceRoot,
  allow_insecure_tls: g.allowInsecureTls,
  created_at: g.createdAt.toISOString(),
  updated_at: g.updatedAt.toISOString(),
});

type Status = z.infer<typeof SessionStatus>;

export const gatewayRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/gateways',
      tags,
      summary: "The organization's gateways",
      request: { query: Pagination },
      responses: { 200: jsonResponse('Gateways', listOf(GatewayRead)), ...authErrors },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, readers);
      const page = c.req.valid('query');
      const { items, total } = await listGateways(c.var.db, organizationId, page);
      return c.json({ items: items.map(gatewayToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/gateways/test',
      tags,
      summary: 'Check that a gateway answers with these settings, without storing anything',
      description:
        'Connects, completes the handshake, checks the version (GATEWAY_MIN_VERSION) and scopes, and disconnects. ' +
        '422 `gateway_check_failed` with `details.reason`: unreachable, starting, tls_failed, upgrade_refused, no_challenge, ' +
        'handshake_timeout, auth_failed, pairing_required, scope_missing, protocol_mismatch, version_too_old, protocol_error.',
      request: { body: jsonBody(GatewayTest) },
      responses: { 200: jsonResponse('It answered', TestResult), ...authErrors, 422: errorContent('It did not') },
    }),
    async (c) => {
      authorize(c.var.principal, admins);
      const input = c.req.valid('json');
      checkGatewayUrl(c.var.settings, input.url, false);
      return c.json(await testConnectivity(c.var.db, c.var.settings, input.url, input.token ?? null), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/gateways',
      tags,
      summary: 'Add a gateway: checked first, then connected and kept connected',
      description:
        'The connectivity check must pass, except for `pairing_required`: a gateway that requires device auth ' +
        "learns this deployment's device from the attempt, and the session shows the approval command.",
      request: { body: jsonBody(GatewayCreate) },
      responses: {
        201: jsonResponse('Created', GatewayWithStatus),
        ...authErrors,
        409: errorContent('Name taken'),
        422: errorContent('Invalid, or the gateway did not pass the check'),
      },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, admins);
      const input = c.req.valid('json');
      checkGatewayUrl(c.var.settings, input.url, input.allow_insecure_tls ?? false);
      await checkBeforeSaving(c.var.db, c.var.settings, input.url, input.token ?? null);
      const gateway = await createGateway(c.var.db, c.var.audit, encryptionKeys(c.var.settings), organizationId, input);
      c.set('audited', true);
      const session = await startSession(c.env, gateway);
      return c.json({ ...gatewayToRead(gateway), session: session as Status }, 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/gateways/{id}',
      tags,
      summary: 'One gateway (never its token)',
      request: { params: IdParam },
      responses: { 200: jsonResponse('Gateway', GatewayRead), ...authErrors, 404: errorContent('No such gateway') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, readers);
      return c.json(gatewayToRead(await getGateway(c.var.db, organizationId, c.req.valid('param').id)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/gateways/{id}',
      tags,
      summary: 'Change a gateway (a changed URL or token is checked first, then the session reconnects with it)',
      request: { params: IdParam, body: jsonBody(GatewayUpdate) },
      responses: {
        200: jsonResponse('Updated', GatewayWithStatus),
        ...authErrors,
        404: errorContent('No such gateway'),
        409: errorContent('Name taken'),
        422: errorContent('Invalid, or the gateway did not pass the check'),
      },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, admins);
      const id = c.req.valid('param').id;
      const input: GatewayFields = c.req.valid('json');
      const current = await getGateway(c.var.db, organizationId, id);
      const keys = encryptionKeys(c.var.settings);
      const url = input.url ?? current.url;
      checkGatewayUrl(c.var.settings, url, input.allow_insecure_tls ?? current.allowInsecureTls);
      if (input.url !== undefined || input.token !== undefined) {
        const token = input.token !== undefined ? input.token : await gatewayToken(keys, current);
        await checkBeforeSaving(c.var.db, c.var.settings, url, token);
      }
      const gateway = await updateGateway(c.var.db, c.var.audit, keys, organizationId, id, input);
      c.set('audited', true);
      // A new address or credential means a new connection; a rename or workspace change does not.
      const reconnect = input.url !== undefined || input.token !== undefined;
      const session = reconnect ? await startSession(c.env, gateway) : await sessionStatus(c.env, gateway.id);
      return c.json({ ...gatewayToRead(gateway), session: session as Status }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/gateways/{id}',
      tags,
      summary: 'Delete a gateway: its session disconnects, its boards are detached',
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, ...authErrors, 404: errorContent('No such gateway') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, admins);
      const id = c.req.valid('param').id;
      await deleteGateway(c.var.db, c.var.audit, organizationId, id);
      c.set('audited', true);
      await forgetSession(c.env, id);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/gateways/{id}/status',
      tags,
      summary: "The gateway session's state: connected, since, protocol, server version, last error, attempts",
      request: { params: IdParam },
      responses: { 200: jsonResponse('Status', SessionStatus), ...authErrors, 404: errorContent('No such gateway') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, readers);
      const gateway = await getGateway(c.var.db, organizationId, c.req.valid('param').id);
      return c.json((await sessionStatus(c.env, gateway.id)) as Status, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/gateways/{id}/events',
      tags,
      summary:
        "Subscribe to the gateway's live events over a WebSocket (an organization-wide ticket is the credential)",
      description: [
        'Get the ticket from `POST /api/v1/events/ticket` without `board_id`. Messages:',
        '`{"type":"ready","last_id":n|null,"status":{...}}` after any replay,',
        '`{"type":"event","id":n|null,"event":{"event","payload","seq","at"}}` (id null: too large to buffer),',
        '`{"type":"status","status":{...}}` when the session changes state, `{"type":"resync","after_id":n}`',
        'when the buffer no longer reaches back to `after_id`. Close codes: 4404 gateway deleted, 4401 revoked, 4423 locked.',
      ].join(' '),
      security: [],
      request: { params: IdParam, query: SubscribeQuery.omit({ board_id: true }) },
      responses: {
        101: { description: 'Switching to the WebSocket protocol' },
        401: errorContent('Missing, used or expired ticket'),
        403: errorContent('Origin not allowed'),
        404: errorContent('No such gateway'),
        426: errorContent('Not a WebSocket upgrade'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const query = c.req.valid('query');
      const grant = await redeemUpgrade(c, query.ticket, null);
      if (grant.boardId !== null) {
        throw new AppError(403, 'forbidden', 'Gateway events need an organization-wide ticket (without board_id).');
      }
      const db = await openDatabase(c.var.settings);
      const gateway = await getGateway(db, grant.organizationId, c.req.valid('param').id);
      const upgraded = await subscribeToSession(c.env, gateway.id, grant.principalId, query.after_id ?? null);
      return upgradedResponse(upgraded, 'gateway session');
    },
  );
