import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import { scheduleOnGateway } from '../services/agent-provisioning';
import {
  AGENT_STATUSES,
  type Agent,
  createAgent,
  deleteAgent,
  effectiveStatus,
  getAgent,
  listAgents,
  revokeAgentToken,
  rotateAgentToken,
  updateAgent,
} from '../services/agents';
import { boardViewer } from '../services/boards';
import type { AppEnv } from '../types';
import { publishActivity } from './publish';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

export const AgentRead = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    board_id: z.uuid(),
    name: z.string(),
    is_lead: z.boolean(),
    status: z.enum(AGENT_STATUSES).openapi({
      description: 'Lifecycle status; an `online` agent not seen for 10 minutes reads as `offline`',
    }),
    provision_error: z.string().nullable(),
    has_token: z.boolean().openapi({ description: 'Whether the agent holds a working token (never the token)' }),
    token_prefix: z
      .string()
      .nullable()
      .openapi({ description: 'First characters of the current or last token, to tell tokens apart' }),
    token_revoked_at: timestamp.nullable(),
    last_seen_at: timestamp.nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('Agent');

const AgentWithToken = AgentRead.extend({
  token: z.string().openapi({ description: 'The agent token. Shown only in this response: hand it to the agent now.' }),
}).openapi('AgentWithToken');

const AgentCreate = z.object({
  board_id: z.uuid({ error: 'must be a UUID' }),
  name: z.string().trim().min(1).max(200),
  is_lead: z.boolean().optional().default(false),
});

const AgentUpdate = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    is_lead: z.boolean().optional().openapi({ description: 'One lead per board: 409 `lead_exists` for a second' }),
    status: z.enum(AGENT_STATUSES).optional(),
  })
  .openapi('AgentUpdate');

const AgentFilter = Pagination.extend({ board_id: z.uuid({ error: 'must be a UUID' }).optional() });

export const agentToRead = (a: Agent): z.infer<typeof AgentRead> => ({
  id: a.id,
  organization_id: a.organizationId,
  board_id: a.boardId,
  name: a.name,
  is_lead: a.isLead,
  status: effectiveStatus(a),
  provision_error: a.provisionError,
  has_token: a.tokenHash !== null,
  token_prefix: a.tokenPrefix,
  token_revoked_at: a.tokenRevokedAt?.toISOString() ?? null,
  last_seen_at: a.lastSeenAt?.toISOString() ?? null,
  created_at: a.createdAt.toISOString(),
  updated_at: a.updatedAt.toISOString(),
});

const tags = ['agents'];
/** Where provisioned agents call back: this API's own origin. */
const origin = (c: { req: { url: string } }) => new URL(c.req.url).origin;
const readers = { user: 'member', apiKey: 'read' } as const;
const managers = { user: 'admin', apiKey: 'write' } as const;
const notFound = { 404: errorContent('No such agent') } as const;
const conflicts = {
  409: errorContent('`lead_exists`: the board has a lead; `agent_limit_reached`: the board has max_agents workers'),
} as const;

export const agentRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/agents',
      tags,
      summary: 'Create an agent on a board (its token is returned once)',
      request: { body: jsonBody(AgentCreate) },
      responses: {
        201: jsonResponse('Created', AgentWithToken),
        ...authErrors,
        404: errorContent('No such board'),
        ...conflicts,
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, managers);
      const body = c.req.valid('json');
      const { agent, token, events } = await createAgent(c.var.db, c.var.audit, organizationId, {
        boardId: body.board_id,
        name: body.name,
        isLead: body.is_lead,
      });
      c.set('audited', true);
      publishActivity(c, events);
      await scheduleOnGateway(c.env, c.var.db, c.var.settings, agent, 'provision', { baseUrl: origin(c), token });
      return c.json({ ...agentToRead(agent), token }, 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agents',
      tags,
      summary: 'List agents on the boards the caller may read',
      request: { query: AgentFilter },
      responses: { 200: jsonResponse('Agents', listOf(AgentRead)), ...authErrors },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { board_id, ...page } = c.req.valid('query');
      const { items, total } = await listAgents(c.var.db, boardViewer(principal, organizationId), {
        boardId: board_id,
        ...page,
      });
      return c.json({ items: items.map(agentToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agents/{id}',
      tags,
      summary: 'Read one agent',
      request: { params: IdParam },
      responses: { 200: jsonResponse('The agent', AgentRead), ...authErrors, ...notFound },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const agent = await getAgent(c.var.db, boardViewer(principal, organizationId), c.req.valid('param').id);
      return c.json(agentToRead(agent), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/agents/{id}/token/rotate',
      tags,
      summary: 'Mint a new token (returned once); the old one stops working at once',
      request: { params: IdParam },
      responses: { 200: jsonResponse('New token', AgentWithToken), ...authErrors, ...notFound },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, managers);
      const { agent, token } = await rotateAgentToken(c.var.db, c.var.audit, organizationId, c.req.valid('param').id);
      c.set('audited', true);
      return c.json({ ...agentToRead(agent), token }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/agents/{id}/token/revoke',
      tags,
      summary: "Revoke the agent's token; it gets 401 from its next request on",
      request: { params: IdParam },
      responses: { 200: jsonResponse('Revoked', AgentRead), ...authErrors, ...notFound },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, managers);
      const agent = await revokeAgentToken(c.var.db, c.var.audit, organizationId, c.req.valid('param').id);
      c.set('audited', true);
      return c.json(agentToRead(agent), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/agents/{id}',
      tags,
      summary: 'Rename an agent, make it the lead or a worker, or set its status',
      request: { params: IdParam, body: jsonBody(AgentUpdate) },
      responses: {
        200: jsonResponse('Updated', AgentRead),
        ...authErrors,
        ...notFound,
        ...conflicts,
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, managers);
      const body = c.req.valid('json');
      const { agent, events } = await updateAgent(
        c.var.db,
        c.var.audit,
        boardViewer(principal, organizationId, 'write'),
        c.req.valid('param').id,
        { name: body.name, isLead: body.is_lead, status: body.status },
      );
      c.set('audited', true);
      publishActivity(c, events);
      if (body.name !== undefined || body.is_lead !== undefined) {
        await scheduleOnGateway(c.env, c.var.db, c.var.settings, agent, 'update', { baseUrl: origin(c) });
      }
      return c.json(agentToRead(agent), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/agents/{id}',
      tags,
      summary: 'Delete an agent; its token stops working and its tasks become unassigned',
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, ...authErrors, ...notFound },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, managers);
      const viewer = boardViewer(principal, organizationId, 'write');
      const agent = await getAgent(c.var.db, viewer, c.req.valid('param').id);
      const { events } = await deleteAgent(c.var.db, c.var.audit, viewer, agent.id);
      c.set('audited', true);
      publishActivity(c, events);
      await scheduleOnGateway(c.env, c.var.db, c.var.settings, agent, 'delete', { baseUrl: origin(c) });
      return c.body(null, 204);
    },
  );
