import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { requireUser } from '../auth/policy';
import type { UserPrincipal } from '../auth/principal';
import { validationHook } from '../middleware/errors';
import { bootstrap, getUser, type User, updateUser } from '../services/users';
import type { AppEnv } from '../types';
import { OrganizationRead, toOrganizationRead } from './organizations';
import { authErrors, errorContent, jsonBody, jsonResponse, timestamp } from './schemas';

const UserRead = z
  .object({
    id: z.uuid(),
    subject: z.string().openapi({ description: '`local` in local mode, the identity provider subject otherwise' }),
    name: z.string().nullable(),
    email: z.string().nullable(),
    platform_admin: z.boolean(),
    active_organization_id: z
      .uuid()
      .nullable()
      .openapi({ description: 'The organization I act in; null until I select one' }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('User');

const Bootstrap = z
  .object({
    user: UserRead,
    organizations: z.array(OrganizationRead),
    active_organization_id: z.uuid().nullable(),
  })
  .openapi('Bootstrap');

const UserUpdate = z
  .object({
    name: z.string().trim().min(1).max(100).nullable().optional(),
    email: z.email().max(254).nullable().optional(),
  })
  .refine((b) => b.name !== undefined || b.email !== undefined, 'name at least one field to change');

/** The active organization is the one the principal has a membership in, never a stale pointer. */
const toUserRead = (u: User, principal: UserPrincipal): z.infer<typeof UserRead> => ({
  id: u.id,
  subject: u.subject,
  name: u.name,
  email: u.email,
  platform_admin: principal.platformAdmin,
  active_organization_id: principal.membership?.organizationId ?? null,
  created_at: u.createdAt.toISOString(),
  updated_at: u.updatedAt.toISOString(),
});

const tags = ['users'];

export const userRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/auth/bootstrap',
      tags: ['auth'],
      summary: 'Who I am and where I can act (the user is provisioned on first sight)',
      responses: { 200: jsonResponse('Me', Bootstrap), ...authErrors },
    }),
    async (c) => {
      const principal = requireUser(c.var.principal);
      const { user, organizations } = await bootstrap(c.var.db, principal.userId);
      return c.json(
        {
          user: toUserRead(user, principal),
          organizations: organizations.map(toOrganizationRead),
          active_organization_id: principal.membership?.organizationId ?? null,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/users/me',
      tags,
      summary: 'My profile',
      responses: { 200: jsonResponse('Me', UserRead), ...authErrors },
    }),
    async (c) => {
      const principal = requireUser(c.var.principal);
      return c.json(toUserRead(await getUser(c.var.db, principal.userId), principal), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/users/me',
      tags,
      summary: 'Change my name or email',
      request: { body: jsonBody(UserUpdate) },
      responses: { 200: jsonResponse('Updated', UserRead), ...authErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const principal = requireUser(c.var.principal);
      const body = c.req.valid('json');
      const user = await updateUser(c.var.db, c.var.audit, principal.userId, { name: body.name, email: body.email });
      c.set('audited', true);
      return c.json(toUserRead(user, principal), 200);
    },
  );
