import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { authorize, requireUser } from '../auth/policy';
import { type Membership, ROLES, type UserPrincipal } from '../auth/principal';
import { validationHook } from '../middleware/errors';
import { auditInsert } from '../services/audit';
import { closeEventSockets, closeLiveSockets } from '../services/events';
import { forgetSession } from '../services/gateway-sessions';
import { gatewayIds } from '../services/gateways';
import {
  acceptInvite,
  acceptPath,
  createInvite,
  INVITE_DEFAULT_HOURS,
  INVITE_MAX_HOURS,
  INVITE_ROLES,
  type Invite,
  inviteStatus,
  listInvites,
  revokeInvite,
} from '../services/invites';
import { deleteOrganization, exportOrganization } from '../services/offboarding';
import {
  createOrganization,
  getActiveOrganization,
  listMembers,
  listOrganizationsOf,
  type Member,
  type OrganizationWithRole,
  removeMember,
  switchActiveOrganization,
  updateMember,
} from '../services/organizations';
import type { AppEnv } from '../types';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

// ---------------------------------------------------------------------------------------------
// Read models

export const OrganizationRead = z
  .object({
    id: z.uuid(),
    name: z.string(),
    role: z.enum(ROLES).openapi({ description: 'My role in this organization' }),
    locked: z.boolean(),
    locked_at: timestamp.nullable(),
    created_at: timestamp,
  })
  .openapi('Organization');

export const toOrganizationRead = ({
  organization: o,
  role,
}: OrganizationWithRole): z.infer<typeof OrganizationRead> => ({
  id: o.id,
  name: o.name,
  role,
  locked: o.lockedAt !== null,
  locked_at: o.lockedAt?.toISOString() ?? null,
  created_at: o.createdAt.toISOString(),
});

const BoardAccessRead = z.object({ board_id: z.uuid(), can_read: z.boolean(), can_write: z.boolean() });

const MemberRead = z
  .object({
    id: z.uuid(),
    user_id: z.uuid(),
    name: z.string().nullable(),
    email: z.string().nullable(),
    role: z.enum(ROLES),
    all_boards_read: z.boolean(),
    all_boards_write: z.boolean(),
    boards: z.array(BoardAccessRead),
    created_at: timestamp,
  })
  .openapi('Member');

const toMemberRead = (m: Member): z.infer<typeof MemberRead> => ({
  id: m.id,
  user_id: m.userId,
  name: m.name,
  email: m.email,
  role: m.role,
  all_boards_read: m.allBoardsRead,
  all_boards_write: m.allBoardsWrite,
  boards: m.boards,
  created_at: m.createdAt.toISOString(),
});

const InviteRead = z
  .object({
    id: z.uuid(),
    email: z.string().nullable(),
    role: z.enum(INVITE_ROLES),
    all_boards_read: z.boolean(),
    all_boards_write: z.boolean(),
    status: z.enum(['pending', 'accepted', 'revoked', 'expired']),
    invited_by: z.uuid().nullable(),
    expires_at: timestamp,
    accepted_at: timestamp.nullable(),
    accepted_by: z.uuid().nullable(),
    revoked_at: timestamp.nullable(),
    created_at: timestamp,
  })
  .openapi('Invite');

const InviteCreated = InviteRead.extend({
  token: z.string().openapi({ description: 'The invite token. Shown only in this response: send it now.' }),
  accept_path: z.string().openapi({ description: 'Dashboard path that accepts the invite (token in the fragment)' }),
}).openapi('InviteCreated');

const toInviteRead = (i: Invite): z.infer<typeof InviteRead> => ({
  id: i.id,
  email: i.email,
  role: i.role as z.infer<typeof InviteRead>['role'],
  all_boards_read: i.allBoardsRead,
  all_boards_write: i.allBoardsWrite,
  status: inviteStatus(i),
  invited_by: i.invitedBy,
  expires_at: i.expiresAt.toISOString(),
  accepted_at: i.acceptedAt?.toISOString() ?? null,
  accepted_by: i.acceptedBy,
  revoked_at: i.revokedAt?.toISOString() ?? null,
  created_at: i.createdAt.toISOString(),
});

// ---------------------------------------------------------------------------------------------
// Request bodies

const OrganizationCreate = z.object({ name: z.string().trim().min(1).max(100) });
const ActiveOrganization = z.object({ organization_id: z.uuid({ error: 'must be a UUID' }) });

const BoardAccessEntry = z.object({
  board_id: z.uuid({ error: 'must be a UUID' }),
  can_read: z.boolean().default(true),
  can_write: z.boolean().default(false),
});

const MemberUpdate = z
  .object({
    role: z.enum(ROLES).optional(),
    all_boards_read: z.boolean().optional(),
    all_boards_write: z.boolean().optional(),
    boards: z
      .array(BoardAccessEntry)
      .max(500)
      .refine((list) => new Set(list.map((b) => b.board_id)).size === list.length, 'names a board twice')
      .optional()
      .openapi({ description: "Replaces the member's per-board access list" }),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), 'name at least one field to change');

const InviteCreate = z.object({
  email: z.email().max(254).nullable().optional(),
  role: z.enum(INVITE_ROLES),
  all_boards_read: z.boolean().default(false),
  all_boards_write: z.boolean().default(false),
  expires_in_hours: z.number().int().min(1).max(INVITE_MAX_HOURS).default(INVITE_DEFAULT_HOURS),
});

const InviteAccept = z.object({ token: z.string().min(1).max(200) });

const AcceptedRead = z
  .object({
    organization: OrganizationRead,
    member_id: z.uuid(),
    active_organization_id: z.uuid(),
  })
  .openapi('InviteAccepted');

// ---------------------------------------------------------------------------------------------

const tags = ['organizations'];

/** An operator acting in their active organization with at least `role`; others get 403. */
function operatorIn(
  c: Context<AppEnv>,
  role: 'member' | 'admin' | 'owner',
): { user: UserPrincipal; membership: Membership; organizationId: string } {
  const { organizationId } = authorize(c.var.principal, { user: role });
  const user = requireUser(c.var.principal);
  return { user, membership: user.membership as Membership, organizationId };
}

const noContent = { description: 'Done' };

export const organizationRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/organizations',
      tags,
      summary: 'Organizations I belong to, with my role in each',
      request: { query: Pagination },
      responses: { 200: jsonResponse('Organizations', listOf(OrganizationRead)), ...authErrors },
    }),
    async (c) => {
      const user = requireUser(c.var.principal);
      const page = c.req.valid('query');
      const { items, total } = await listOrganizationsOf(c.var.db, user.userId, page);
      return c.json({ items: items.map(toOrganizationRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/organizations',
      tags,
      summary: 'Create an organization; I become its owner',
      request: { body: jsonBody(OrganizationCreate) },
      responses: { 201: jsonResponse('Created', OrganizationRead), ...authErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const user = requireUser(c.var.principal);
      const { organization } = await createOrganization(c.var.db, c.var.audit, user.userId, c.req.valid('json').name);
      c.set('audited', true);
      return c.json(toOrganizationRead({ organization, role: 'owner' }), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/organizations/me',
      tags,
      summary: 'My active organization',
      responses: { 200: jsonResponse('The organization', OrganizationRead), ...authErrors },
    }),
    async (c) => {
      const { membership } = operatorIn(c, 'member');
      return c.json(toOrganizationRead(await getActiveOrganization(c.var.db, membership)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/organizations/me/export',
      tags,
      summary: 'Export everything of my active organization (owner): streamed NDJSON, credentials left out',
      responses: {
        200: {
          description: 'A `{"format",...}` line, then one `{"table","row"}` line per row',
          content: { 'application/x-ndjson': { schema: z.string() } },
        },
        ...authErrors,
      },
    }),
    async (c) => {
      const { organizationId } = operatorIn(c, 'owner');
      await auditInsert(c.var.db, c.var.audit, {
        action: 'organization.export',
        targetType: 'organization',
        targetId: organizationId,
      });
      const body = await exportOrganization(c.var.db, organizationId);
      return new Response(body, {
        headers: {
          'Content-Type': 'application/x-ndjson',
          'Content-Disposition': `attachment; filename="organization-${organizationId}.ndjson"`,
        },
      }) as never;
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/organizations/me',
      tags,
      summary: 'Delete my active organization and everything under it (owner; confirm with its exact name)',
      request: { body: jsonBody(z.object({ confirm: z.string().max(200) }).openapi('OrganizationDelete')) },
      responses: { 204: noContent, ...authErrors, 422: errorContent('The confirmation does not match the name') },
    }),
    async (c) => {
      const { organizationId } = operatorIn(c, 'owner');
      // Read before the cascade removes them: their sessions disconnect and close their subscribers.
      const gateways = await gatewayIds(c.var.db, organizationId);
      await deleteOrganization(c.var.db, c.var.audit, organizationId, c.req.valid('json').confirm);
      c.set('audited', true);
      c.executionCtx.waitUntil(
        Promise.all([
          closeEventSockets(c.env, organizationId, { all: true }),
          ...gateways.map((id) => forgetSession(c.env, id).catch(() => {})),
        ]),
      );
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/organizations/me/active',
      tags,
      summary: 'Switch my active organization',
      request: { body: jsonBody(ActiveOrganization) },
      responses: {
        200: jsonResponse('Now active', OrganizationRead),
        ...authErrors,
        404: errorContent('Not a member of that organization'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const user = requireUser(c.var.principal);
      const org = await switchActiveOrganization(
        c.var.db,
        c.var.audit,
        user.userId,
        c.req.valid('json').organization_id,
      );
      c.set('audited', true);
      return c.json(toOrganizationRead(org), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/organizations/me/members',
      tags,
      summary: 'Members of my active organization, with roles and board access',
      request: { query: Pagination },
      responses: { 200: jsonResponse('Members', listOf(MemberRead)), ...authErrors },
    }),
    async (c) => {
      const { organizationId } = operatorIn(c, 'member');
      const page = c.req.valid('query');
      const { items, total } = await listMembers(c.var.db, organizationId, page);
      return c.json({ items: items.map(toMemberRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/organizations/me/members/{id}',
      tags,
      summary: "Change a member's role or board access (admin; the owner role only by owners)",
      request: { params: IdParam, body: jsonBody(MemberUpdate) },
      responses: {
        200: jsonResponse('Updated', MemberRead),
        ...authErrors,
        404: errorContent('No such member'),
        409: errorContent('The last owner keeps the role (`last_owner`)'),
        422: errorContent('Invalid, or a board of another organization'),
      },
    }),
    async (c) => {
      const { membership } = operatorIn(c, 'admin');
      const body = c.req.valid('json');
      const member = await updateMember(c.var.db, c.var.audit, membership, c.req.valid('param').id, {
        role: body.role,
        allBoardsRead: body.all_boards_read,
        allBoardsWrite: body.all_boards_write,
        boards: body.boards,
      });
      c.set('audited', true);
      // Access may have narrowed: the member reconnects with a ticket checked against the new access.
      await closeLiveSockets(c.env, c.var.db, membership.organizationId, { principalIds: [member.userId] });
      return c.json(toMemberRead(member), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/organizations/me/members/{id}',
      tags,
      summary: 'Remove a member (admin; owners only by owners), or leave (my own membership)',
      request: { params: IdParam },
      responses: {
        204: noContent,
        ...authErrors,
        404: errorContent('No such member'),
        409: errorContent('The last owner cannot leave (`last_owner`)'),
      },
    }),
    async (c) => {
      const { user, membership } = operatorIn(c, 'member');
      const removed = await removeMember(
        c.var.db,
        c.var.audit,
        { userId: user.userId, membership },
        c.req.valid('param').id,
      );
      c.set('audited', true);
      // A removed member's open event sockets must not keep streaming the organization's events.
      await closeLiveSockets(c.env, c.var.db, membership.organizationId, { principalIds: [removed.userId] });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/organizations/me/invites',
      tags,
      summary: "My active organization's invites (never their tokens)",
      request: { query: Pagination },
      responses: { 200: jsonResponse('Invites', listOf(InviteRead)), ...authErrors },
    }),
    async (c) => {
      const { organizationId } = operatorIn(c, 'admin');
      const page = c.req.valid('query');
      const { items, total } = await listInvites(c.var.db, organizationId, page);
      return c.json({ items: items.map(toInviteRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/organizations/me/invites',
      tags,
      summary: 'Invite someone (the token is returned once)',
      request: { body: jsonBody(InviteCreate) },
      responses: { 201: jsonResponse('Created', InviteCreated), ...authErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const { organizationId } = operatorIn(c, 'admin');
      const body = c.req.valid('json');
      const { invite, token } = await createInvite(c.var.db, c.var.audit, organizationId, {
        email: body.email ?? null,
        role: body.role,
        allBoardsRead: body.all_boards_read,
        allBoardsWrite: body.all_boards_write,
        expiresInHours: body.expires_in_hours,
      });
      c.set('audited', true);
      return c.json({ ...toInviteRead(invite), token, accept_path: acceptPath(token) }, 201);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/organizations/me/invites/{id}',
      tags,
      summary: 'Revoke a pending invite',
      request: { params: IdParam },
      responses: {
        200: jsonResponse('Revoked', InviteRead),
        ...authErrors,
        404: errorContent('No such invite'),
        409: errorContent('Already accepted'),
      },
    }),
    async (c) => {
      const { organizationId } = operatorIn(c, 'admin');
      const invite = await revokeInvite(c.var.db, c.var.audit, organizationId, c.req.valid('param').id);
      c.set('audited', true);
      return c.json(toInviteRead(invite), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/organizations/invites/accept',
      tags,
      summary: 'Accept an invite; its organization becomes my active one',
      request: { body: jsonBody(InviteAccept) },
      responses: {
        200: jsonResponse('Joined', AcceptedRead),
        ...authErrors,
        409: errorContent('Already a member (`already_member`)'),
        410: errorContent('Expired, revoked, used or unknown (`invite_unusable`)'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const user = requireUser(c.var.principal);
      const accepted = await acceptInvite(c.var.db, c.var.audit, user.userId, c.req.valid('json').token);
      c.set('audited', true);
      return c.json(
        {
          organization: toOrganizationRead({ organization: accepted.organization, role: accepted.role }),
          member_id: accepted.memberId,
          active_organization_id: accepted.organization.id,
        },
        200,
      );
    },
  );
