import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import { type Board, boardViewer, createBoard, getBoard, listBoards } from '../services/boards';
import type { AppEnv } from '../types';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

export const BoardRead = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    name: z.string(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('Board');

const BoardCreate = z.object({ name: z.string().trim().min(1).max(200) });

export const boardToRead = (b: Board): z.infer<typeof BoardRead> => ({
  id: b.id,
  organization_id: b.organizationId,
  name: b.name,
  created_at: b.createdAt.toISOString(),
  updated_at: b.updatedAt.toISOString(),
});

const tags = ['boards'];
const readers = { user: 'member', apiKey: 'read' } as const;
const creators = { user: 'admin', apiKey: 'write' } as const;

export const boardRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/boards',
      tags,
      summary: 'Create a board',
      request: { body: jsonBody(BoardCreate) },
      responses: { 201: jsonResponse('Created', BoardRead), ...authErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, creators);
      const board = await createBoard(c.var.db, c.var.audit, organizationId, c.req.valid('json'));
      c.set('audited', true);
      return c.json(boardToRead(board), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards',
      tags,
      summary: 'List the boards the caller may read',
      request: { query: Pagination },
      responses: { 200: jsonResponse('Boards', listOf(BoardRead)), ...authErrors },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const page = c.req.valid('query');
      const { items, total } = await listBoards(c.var.db, boardViewer(principal, organizationId), page);
      return c.json({ items: items.map(boardToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}',
      tags,
      summary: 'Read one board',
      request: { params: IdParam },
      responses: { 200: jsonResponse('The board', BoardRead), ...authErrors, 404: errorContent('No such board') },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const board = await getBoard(c.var.db, boardViewer(principal, organizationId), c.req.valid('param').id);
      return c.json(boardToRead(board), 200);
    },
  );
