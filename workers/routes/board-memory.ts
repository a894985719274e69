import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import { createMemoryEntry, listMemory, type MemoryEntry } from '../services/board-memory';
import { boardAccess, boardViewer } from '../services/boards';
import type { AppEnv } from '../types';
import { publishActivity } from './publish';
import { authErrors, errorContent, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

export const MemoryRead = z
  .object({
    id: z.uuid(),
    board_id: z.uuid(),
    content: z.string(),
    tags: z.array(z.string()),
    source: z.string().nullable(),
    author_type: z.string(),
    author_id: z.uuid().nullable(),
    created_at: timestamp,
  })
  .openapi('MemoryEntry');

export const MemoryCreate = z
  .object({
    content: z.string().min(1).max(20_000),
    tags: z
      .array(z.string().trim().min(1).max(50))
      .max(20)
      .optional()
      .default([])
      .openapi({ description: 'The `chat` tag makes the entry a chat message' }),
    source: z.string().trim().max(100).nullable().optional(),
  })
  .openapi('MemoryCreate');

export const MemoryFilter = Pagination.extend({
  tag: z.string().max(50).optional().openapi({ description: 'Only entries with this tag (`chat` for the chat)' }),
});

export const memoryToRead = (m: MemoryEntry): z.infer<typeof MemoryRead> => ({
  id: m.id,
  board_id: m.boardId,
  content: m.content,
  tags: m.tags,
  source: m.source,
  author_type: m.authorType,
  author_id: m.authorId,
  created_at: m.createdAt.toISOString(),
});

const BoardParam = z.object({ id: z.uuid({ error: 'must be a UUID' }) });
const tags = ['board-memory'];
const readers = { user: 'member', apiKey: 'read' } as const;
const writers = { user: 'member', apiKey: 'write' } as const;

export const boardMemoryRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/boards/{id}/memory',
      tags,
      summary: "A board's memory, newest first (tag=chat for its chat)",
      request: { params: BoardParam, query: MemoryFilter },
      responses: {
        200: jsonResponse('Entries', listOf(MemoryRead)),
        ...authErrors,
        404: errorContent('No such board'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, readers);
      const { tag, ...page } = c.req.valid('query');
      const { items, total } = await listMemory(
        c.var.db,
        boardViewer(principal, organizationId),
        c.req.valid('param').id,
        { tag, ...page },
      );
      return c.json({ items: items.map(memoryToRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/boards/{id}/memory',
      tags,
      summary: 'Add a memory entry or chat message to a board',
      request: { params: BoardParam, body: jsonBody(MemoryCreate) },
      responses: {
        201: jsonResponse('Created', MemoryRead),
        ...authErrors,
        404: errorContent('No such board'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { principal, organizationId } = authorize(c.var.principal, writers);
      const body = c.req.valid('json');
      const { entry, events } = await createMemoryEntry(
        c.var.db,
        c.var.audit,
        boardAccess(principal, organizationId),
        c.req.valid('param').id,
        { content: body.content, tags: body.tags, source: body.source || null },
      );
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(memoryToRead(entry), 201);
    },
  );
