import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { API_KEY_SCOPES } from '../auth/principal';
import { validationHook } from '../middleware/errors';
import { type ApiKey, createApiKey, getApiKey, listApiKeys, revokeApiKey } from '../services/api-keys';
import { closeLiveSockets } from '../services/events';
import type { AppEnv } from '../types';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

const ApiKeyRead = z
  .object({
    id: z.uuid(),
    name: z.string(),
    prefix: z.string().openapi({ description: 'First characters of the secret, to tell keys apart' }),
    scopes: z.array(z.enum(API_KEY_SCOPES)),
    expires_at: timestamp.nullable(),
    last_used_at: timestamp.nullable(),
    revoked_at: timestamp.nullable(),
    created_at: timestamp,
    created_by: z.uuid().nullable(),
  })
  .openapi('ApiKey');

const ApiKeyCreate = z.object({
  name: z.string().trim().min(1).max(100),
  scopes: z.array(z.enum(API_KEY_SCOPES)).min(1),
  expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
});

const ApiKeyCreated = ApiKeyRead.extend({
  secret: z.string().openapi({ description: 'The key itself. Shown only in this response: store it now.' }),
}).openapi('ApiKeyCreated');

const toRead = (k: ApiKey): z.infer<typeof ApiKeyRead> => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  scopes: k.scopes as z.infer<typeof ApiKeyRead>['scopes'],
  expires_at: k.expiresAt?.toISOString() ?? null,
  last_used_at: k.lastUsedAt?.toISOString() ?? null,
  revoked_at: k.revokedAt?.toISOString() ?? null,
  created_at: k.createdAt.toISOString(),
  created_by: k.createdBy,
});

const tags = ['api-keys'];
const adminOnly = { user: 'admin', apiKey: 'admin' } as const;
/** Keys are minted by operators only: a key minting keys could outlive its own expiry and revocation. */
const operatorAdmins = { user: 'admin', apiKey: false } as const;

export const apiKeyRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/api-keys',
      tags,
      summary: 'Create an API key (the secret is returned once)',
      request: { body: jsonBody(ApiKeyCreate) },
      responses: { 201: jsonResponse('Created', ApiKeyCreated), ...authErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, operatorAdmins);
      const body = c.req.valid('json');
      const { key, secret } = await createApiKey(c.var.db, c.var.audit, organizationId, {
        name: body.name,
        scopes: body.scopes,
        expiresAt: body.expires_at ? new Date(body.expires_at) : null,
      });
      c.set('audited', true);
      return c.json({ ...toRead(key), secret }, 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/api-keys',
      tags,
      summary: "List the organization's API keys (never their secrets)",
      request: { query: Pagination },
      responses: { 200: jsonResponse('API keys', listOf(ApiKeyRead)), ...authErrors },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, adminOnly);
      const page = c.req.valid('query');
      const { items, total } = await listApiKeys(c.var.db, organizationId, page);
      return c.json({ items: items.map(toRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/api-keys/{id}',
      tags,
      summary: 'Read one API key',
      request: { params: IdParam },
      responses: { 200: jsonResponse('The key', ApiKeyRead), ...authErrors, 404: errorContent('No such key') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, adminOnly);
      return c.json(toRead(await getApiKey(c.var.db, organizationId, c.req.valid('param').id)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/api-keys/{id}/revoke',
      tags,
      summary: 'Revoke an API key; it gets 401 from its next request on',
      request: { params: IdParam },
      responses: { 200: jsonResponse('Revoked', ApiKeyRead), ...authErrors, 404: errorContent('No such key') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, adminOnly);
      const key = await revokeApiKey(c.var.db, c.var.audit, organizationId, c.req.valid('param').id);
      c.set('audited', true);
      // Its live-event sockets close too (never fails the revocation).
      await closeLiveSockets(c.env, c.var.db, organizationId, { principalIds: [key.id] });
      return c.json(toRead(key), 200);
    },
  );
