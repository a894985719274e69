/** The API agents call back on with their own token (`X-Agent-Token`, or `Authorization: Bearer`). */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { requireAgent } from '../auth/policy';
import type { AgentPrincipal } from '../auth/principal';
import { validationHook } from '../middleware/errors';
import { getAgentContext, getAgentSelf, listAgents, recordHeartbeat } from '../services/agents';
import { createApproval, listApprovals } from '../services/approvals';
import { createMemoryEntry, listMemory } from '../services/board-memory';
import { type BoardViewer, boardNotFound, fullBoardAccess } from '../services/boards';
import { getPayload } from '../services/webhooks';
import type { AppEnv } from '../types';
import { AgentRead, agentToRead } from './agents';
import { ApprovalCreate, ApprovalFilter, ApprovalRead, approvalToRead, toNewApproval } from './approvals';
import { MemoryCreate, MemoryFilter, MemoryRead, memoryToRead } from './board-memory';
import { BoardRead, boardToRead } from './boards';
import { publishActivity } from './publish';
import { errorContent, jsonBody, jsonResponse, listOf, Pagination } from './schemas';
import { PayloadSummary, payloadSummary, withStoredPayload } from './webhooks';

const AgentSelf = z
  .object({
    id: z.uuid(),
    name: z.string(),
    board_id: z.uuid(),
    organization_id: z.uuid(),
    is_lead: z.boolean(),
  })
  .openapi('AgentSelf');

const AgentHealth = z
  .object({
    ok: z.literal(true),
    agent: AgentRead,
    board: BoardRead,
    organization: z.object({ id: z.uuid(), name: z.string() }),
  })
  .openapi('AgentHealth');

const agentErrors = {
  401: errorContent('Missing, unknown or revoked agent token'),
  403: errorContent('Not an agent'),
  423: errorContent('The organization is locked'),
  429: errorContent('Too many requests (per agent), or too many failed attempts from this address'),
} as const;

const tags = ['agent-api'];
const description = 'Authenticated with the agent token in `X-Agent-Token` (or `Authorization: Bearer`).';

const AgentPayload = PayloadSummary.extend({
  payload: z.unknown().openapi({ description: 'As stored; a string cut to max_chars when `truncated`' }),
  truncated: z.boolean(),
  total_chars: z.number().int().openapi({ description: 'Length of the payload as text' }),
}).openapi('AgentWebhookPayload');

const PayloadParams = z.object({ id: z.uuid(), webhook_id: z.uuid(), payload_id: z.uuid() });
const PayloadQuery = z.object({ max_chars: z.coerce.number().int().min(1).max(1_000_000).optional() });

/** An agent acts on its own board only: every board-scoped call is pinned to it. */
const ownBoard = (agent: AgentPrincipal): BoardViewer => ({ organizationId: agent.organizationId, memberId: null });

export const agentApiRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/me',
      tags,
      summary: 'The calling agent',
      description,
      responses: { 200: jsonResponse('The agent', AgentSelf), ...agentErrors },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const agent = await getAgentSelf(c.var.db, principal.agentId);
      return c.json(
        {
          id: agent.id,
          name: agent.name,
          board_id: agent.boardId,
          organization_id: agent.organizationId,
          is_lead: agent.isLead,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/healthz',
      tags,
      summary: 'Who am I: the agent, its board and its organization',
      description,
      responses: { 200: jsonResponse('The agent and where it works', AgentHealth), ...agentErrors },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const { agent, board, organization } = await getAgentContext(c.var.db, principal.agentId);
      return c.json({ ok: true as const, agent: agentToRead(agent), board: boardToRead(board), organization }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/agent/heartbeat',
      tags,
      summary: 'I am alive: sets last_seen_at and status online (unless updating or deleting)',
      description,
      responses: { 200: jsonResponse('The agent after the heartbeat', AgentRead), ...agentErrors },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const { agent, events } = await recordHeartbeat(c.var.db, c.var.audit, principal.agentId);
      // Routine heartbeats leave no audit row; a change of status wrote one with the heartbeat.
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(agentToRead(agent), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/boards',
      tags,
      summary: 'The boards the agent works on (its own board)',
      description,
      responses: { 200: jsonResponse('Boards', listOf(BoardRead)), ...agentErrors },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const { board } = await getAgentContext(c.var.db, principal.agentId);
      return c.json({ items: [boardToRead(board)], total: 1, limit: 50, offset: 0 }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/agents',
      tags,
      summary: "The agents on the agent's board",
      description,
      request: { query: Pagination },
      responses: { 200: jsonResponse('Agents', listOf(AgentRead)), ...agentErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const page = c.req.valid('query');
      const { items, total } = await listAgents(c.var.db, ownBoard(principal), {
        boardId: principal.boardId,
        ...page,
      });
      return c.json({ items: items.map(agentToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/memory',
      tags,
      summary: "The board's memory, newest first (tag=chat for its chat)",
      description,
      request: { query: MemoryFilter },
      responses: { 200: jsonResponse('Entries', listOf(MemoryRead)), ...agentErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const { tag, ...page } = c.req.valid('query');
      const { items, total } = await listMemory(c.var.db, ownBoard(principal), principal.boardId, { tag, ...page });
      return c.json({ items: items.map(memoryToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/agent/memory',
      tags,
      summary: 'Write to the board memory (the `chat` tag posts to the board chat)',
      description,
      request: { body: jsonBody(MemoryCreate) },
      responses: { 201: jsonResponse('Created', MemoryRead), ...agentErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const body = c.req.valid('json');
      const { entry, events } = await createMemoryEntry(
        c.var.db,
        c.var.audit,
        fullBoardAccess(principal.organizationId),
        principal.boardId,
        {
          content: body.content,
          tags: body.tags,
          source: body.source || null,
        },
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(memoryToRead(entry), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/approvals',
      tags,
      summary: "The approvals of the agent's board, newest first",
      description,
      request: { query: ApprovalFilter },
      responses: { 200: jsonResponse('Approvals', listOf(ApprovalRead)), ...agentErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const { status, ...page } = c.req.valid('query');
      const { items, total } = await listApprovals(c.var.db, ownBoard(principal), principal.boardId, {
        status,
        ...page,
      });
      return c.json({ items: items.map(approvalToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/agent/approvals',
      tags,
      summary: 'Ask the operators to approve something about tasks of the board',
      description,
      request: { body: jsonBody(ApprovalCreate) },
      responses: {
        201: jsonResponse('Created', ApprovalRead),
        ...agentErrors,
        409: errorContent('`approval_pending`: a task already has a pending approval'),
        422: errorContent('Invalid (also: a task not on this board)'),
      },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const { approval, events } = await createApproval(
        c.var.db,
        c.var.audit,
        fullBoardAccess(principal.organizationId),
        principal.boardId,
        toNewApproval(c.req.valid('json')),
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(approvalToRead(approval), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/agent/boards/{id}/webhooks/{webhook_id}/payloads/{payload_id}',
      tags,
      summary: "Read a webhook payload delivered to the agent's board (max_chars truncates it)",
      description,
      request: { params: PayloadParams, query: PayloadQuery },
      responses: { 200: jsonResponse('Payload', AgentPayload), ...agentErrors, 404: errorContent('No such payload') },
    }),
    async (c) => {
      const principal = requireAgent(c.var.principal);
      const { id, webhook_id, payload_id } = c.req.valid('param');
      if (id !== principal.boardId) throw boardNotFound();
      const p = await getPayload(c.var.db, ownBoard(principal), id, webhook_id, payload_id);
      // The payload as text: JSON as stored, text and base64 as their string.
      const text = p.encoding === 'json' ? p.payloadJson : (JSON.parse(p.payloadJson) as string);
      const max = c.req.valid('query').max_chars;
      const fields = { ...payloadSummary(p), truncated: false, total_chars: text.length };
      if (max !== undefined && text.length > max) {
        return c.json({ ...fields, truncated: true, payload: text.slice(0, max) }, 200);
      }
      // Raw JSON text: the typed c.json() cannot splice it in. The schema still describes the shape.
      return withStoredPayload(fields, p.payloadJson) as never;
    },
  );
