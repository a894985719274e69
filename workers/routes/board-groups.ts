import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import {
  type BoardGroup,
  createBoardGroup,
  deleteBoardGroup,
  getBoardGroup,
  listBoardGroups,
  updateBoardGroup,
} from '../services/board-groups';
import type { AppEnv } from '../types';
import { publishActivity } from './publish';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

export const BoardGroupRead = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    name: z.string(),
    description: z.string(),
    board_count: z.number().int(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('BoardGroup');

const BoardGroupCreate = z
  .object({ name: z.string().trim().min(1).max(200), description: z.string().max(2000).optional() })
  .openapi('BoardGroupCreate');
const BoardGroupUpdate = z
  .object({ name: z.string().trim().min(1).max(200).optional(), description: z.string().max(2000).optional() })
  .openapi('BoardGroupUpdate');

const toRead = (g: BoardGroup): z.infer<typeof BoardGroupRead> => ({
  id: g.id,
  organization_id: g.organizationId,
  name: g.name,
  description: g.description,
  board_count: g.boardCount,
  created_at: g.createdAt.toISOString(),
  updated_at: g.updatedAt.toISOString(),
});

const tags = ['board-groups'];
const readers = { user: 'member', apiKey: 'read' } as const;
const managers = { user: 'admin', apiKey: 'write' } as const;
const notFound = { 404: errorContent('No such board group') } as const;

export const boardGroupRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/board-groups',
      tags,
      summary: 'Create a board group',
      request: { body: jsonBody(BoardGroupCreate) },
      responses: { 201: jsonResponse('Created', BoardGroupRead), ...authErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, managers);
      const { group, events } = await createBoardGroup(c.var.db, c.var.audit, organizationId, c.req.valid('json'));
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(toRead(group), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/board-groups',
      tags,
      summary: "List the organization's board groups",
      request: { query: Pagination },
      responses: { 200: jsonResponse('Board groups', listOf(BoardGroupRead)), ...authErrors },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, readers);
      const page = c.req.valid('query');
      const { items, total } = await listBoardGroups(c.var.db, organizationId, page);
      return c.json({ items: items.map(toRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/board-groups/{id}',
      tags,
      summary: 'Read one board group',
      request: { params: IdParam },
      responses: { 200: jsonResponse('The board group', BoardGroupRead), ...authErrors, ...notFound },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, readers);
      return c.json(toRead(await getBoardGroup(c.var.db, organizationId, c.req.valid('param').id)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'patch',
      path: '/api/v1/board-groups/{id}',
      tags,
      summary: 'Rename or describe a board group',
      request: { params: IdParam, body: jsonBody(BoardGroupUpdate) },
      responses: {
        200: jsonResponse('Updated', BoardGroupRead),
        ...authErrors,
        ...notFound,
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, managers);
      const { group, events } = await updateBoardGroup(
        c.var.db,
        c.var.audit,
        organizationId,
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(toRead(group), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/board-groups/{id}',
      tags,
      summary: 'Delete a board group; its boards stay, without a group',
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, ...authErrors, ...notFound },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, managers);
      const { events } = await deleteBoardGroup(c.var.db, c.var.audit, organizationId, c.req.valid('param').id);
      c.set('audited', true);
      publishActivity(c, events);
      return c.body(null, 204);
    },
  );
