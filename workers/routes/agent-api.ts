/** The API agents call back on with their own token (`X-Agent-Token`, or `Authorization: Bearer`). */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { requireAgent } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import { getAgentSelf } from '../services/agents';
import type { AppEnv } from '../types';
import { errorContent, jsonResponse } from './schemas';

const AgentSelf = z
  .object({
    id: z.uuid(),
    name: z.string(),
    board_id: z.uuid(),
    organization_id: z.uuid(),
    is_lead: z.boolean(),
  })
  .openapi('AgentSelf');

const agentErrors = {
  401: errorContent('Missing, unknown or revoked agent token'),
  403: errorContent('Not an agent'),
  423: errorContent('The organization is locked'),
  429: errorContent('Too many requests (per agent), or too many failed attempts from this address'),
} as const;

export const agentApiRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook }).openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/agent/me',
    tags: ['agent-api'],
    summary: 'The calling agent',
    description: 'Authenticated with the agent token in `X-Agent-Token` (or `Authorization: Bearer`).',
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
);
