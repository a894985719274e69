/** Incident response: revoke-all for a user or an agent, organization lock and unlock. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize, requirePlatformAdmin, requireUser } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import { type Organization, revokeAllForAgent, revokeAllForUser, setOrganizationLock } from '../services/admin';
import { closeEventSocketsOfRevokedUser } from '../services/events';
import type { AppEnv } from '../types';
import { AgentRead, agentToRead } from './agents';
import { authErrors, errorContent, IdParam, jsonResponse, timestamp } from './schemas';

const UserRevocation = z
  .object({
    user_id: z.uuid(),
    credentials_revoked_at: timestamp.openapi({ description: 'Sessions issued at or before this instant are refused' }),
    api_keys_revoked: z.number().int().openapi({ description: 'API keys this user created that were revoked now' }),
  })
  .openapi('UserRevocation');

const OrganizationLock = z
  .object({
    id: z.uuid(),
    name: z.string(),
    locked: z.boolean(),
    locked_at: timestamp.nullable(),
  })
  .openapi('OrganizationLock');

const lockToRead = (o: Organization): z.infer<typeof OrganizationLock> => ({
  id: o.id,
  name: o.name,
  locked: o.lockedAt !== null,
  locked_at: o.lockedAt?.toISOString() ?? null,
});

const tags = ['admin'];

const lockRoute = (action: 'lock' | 'unlock') =>
  createRoute({
    method: 'post',
    path: `/api/v1/admin/organizations/{id}/${action}`,
    tags,
    summary:
      action === 'lock'
        ? 'Lock an organization: its API keys and agents get 423 until unlocked (owner only); operators still work'
        : 'Unlock an organization (owner only)',
    request: { params: IdParam },
    responses: {
      200: jsonResponse(action === 'lock' ? 'Locked' : 'Unlocked', OrganizationLock),
      ...authErrors,
      404: errorContent('No such organization among yours'),
    },
  });

export const adminRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/admin/users/{id}/revoke-all',
      tags,
      summary:
        'Revoke every credential of a user: sessions issued until now and the API keys they created (platform admin)',
      request: { params: IdParam },
      responses: {
        200: jsonResponse('Revoked', UserRevocation),
        ...authErrors,
        404: errorContent('No such user'),
      },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      const result = await revokeAllForUser(c.var.db, c.var.audit, c.req.valid('param').id);
      c.set('audited', true);
      await closeEventSocketsOfRevokedUser(c.env, c.var.db, result.userId);
      return c.json(
        {
          user_id: result.userId,
          credentials_revoked_at: result.credentialsRevokedAt.toISOString(),
          api_keys_revoked: result.apiKeysRevoked,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/admin/agents/{id}/revoke-all',
      tags,
      summary: 'Revoke every credential of an agent (organization admin)',
      request: { params: IdParam },
      responses: { 200: jsonResponse('Revoked', AgentRead), ...authErrors, 404: errorContent('No such agent') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, { user: 'admin', apiKey: 'admin' });
      const agent = await revokeAllForAgent(c.var.db, c.var.audit, organizationId, c.req.valid('param').id);
      c.set('audited', true);
      return c.json(agentToRead(agent), 200);
    },
  )
  .openapi(lockRoute('lock'), async (c) => {
    const user = requireUser(c.var.principal);
    const org = await setOrganizationLock(c.var.db, c.var.audit, user.userId, c.req.valid('param').id, true);
    c.set('audited', true);
    return c.json(lockToRead(org), 200);
  })
  .openapi(lockRoute('unlock'), async (c) => {
    const user = requireUser(c.var.principal);
    const org = await setOrganizationLock(c.var.db, c.var.audit, user.userId, c.req.valid('param').id, false);
    c.set('audited', true);
    return c.json(lockToRead(org), 200);
  });
