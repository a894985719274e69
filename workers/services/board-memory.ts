/** Board memory: notes agents and operators leave on a board; entries tagged `chat` are its chat. */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { fromRow, parseJson } from '../db/rows';
import { boards } from '../db/schema';
import { boardMemory } from '../db/schema-domain';
import type { ActivityEvent } from './activity';
import { jsonb, runChange, textArray } from './activity-feed';
import type { AuditContext } from './audit';
import { type BoardAccess, type BoardViewer, boardNotFound, boardOpenTo, boardReadOnly } from './boards';

export type MemoryEntry = typeof boardMemory.$inferSelect;

export const CHAT_TAG = 'chat';

export interface NewMemoryEntry {
  content: string;
  tags: string[];
  source?: string | null;
}

/** How much of a chat message its activity event carries. */
const EXCERPT = 280;

export async function createMemoryEntry(
  db: Database,
  ctx: AuditContext,
  access: BoardAccess,
  boardId: string,
  input: NewMemoryEntry,
): Promise<{ entry: MemoryEntry; events: ActivityEvent[] }> {
  const tags = [...new Set(input.tags)];
  const chat = tags.includes(CHAT_TAG);
  const authorType = ctx.actorType === 'agent' || ctx.actorType === 'api_key' ? ctx.actorType : 'user';
  const { rows, events, extra } = await runChange(db, ctx, {
    before: [
      sql`b AS (SELECT id, organization_id, ${boardOpenTo(db, access.write, boards.id)} AS can_write FROM boards
        WHERE id = ${boardId}::uuid AND organization_id = ${access.read.organizationId}::uuid
          AND ${boardOpenTo(db, access.read, boards.id)})`,
    ],
    change: sql`INSERT INTO board_memory (organization_id, board_id, content, tags, source, author_type, author_id)
      SELECT organization_id, id, ${input.content}::text, ${textArray(tags)}, ${input.source ?? null}::text,
        ${authorType}::text, ${ctx.actorId}::uuid
      FROM b WHERE b.can_write
      RETURNING *`,
    audit: {
      action: 'memory.create',
      targetType: 'board_memory',
      details: jsonb({ board_id: boardId, tags, source: input.source ?? null }),
    },
    activity: [
      {
        type: chat ? 'chat.message' : 'memory.created',
        message: chat
          ? sql`left(changed.content, ${EXCERPT}::int)`
          : sql`format('Memory added%s', coalesce(' from ' || changed.source, ''))`,
        boardId: sql`changed.board_id`,
        agentId: ctx.actorType === 'agent' ? sql`${ctx.actorId}::uuid` : undefined,
        payload: sql`jsonb_build_object('memory_id', changed.id, 'tags', to_jsonb(changed.tags), 'source', changed.source,
          'author_type', changed.author_type, 'author_id', changed.author_id,
          'content', ${chat ? sql`left(changed.content, ${EXCERPT}::int)` : sql`NULL::text`})`,
      },
    ],
    extra: { board_found: sql`EXISTS (SELECT 1 FROM b)` },
  });
  const [row] = rows;
  if (!row) throw extra.board_found ? boardReadOnly() : boardNotFound();
  return { entry: fromRow(boardMemory, row), events };
}

/** Newest first; `tag` keeps entries carrying it (`chat` for the chat). */
export async function listMemory(
  db: Database,
  viewer: BoardViewer,
  boardId: string,
  filter: { tag?: string; limit: number; offset: number },
): Promise<{ items: MemoryEntry[]; total: number }> {
  const where = sql`m.board_id = ${boardId}::uuid AND m.organization_id = ${viewer.organizationId}::uuid
    ${filter.tag ? sql`AND ${filter.tag}::text = ANY(m.tags)` : sql``}`;
  const { rows } = await db.execute<Record<string, unknown>>(sql`
    WITH b AS (SELECT 1 FROM boards WHERE id = ${boardId}::uuid AND organization_id = ${viewer.organizationId}::uuid
      AND ${boardOpenTo(db, viewer, boards.id)}),
    page AS (SELECT m.* FROM board_memory m WHERE ${where} AND EXISTS (SELECT 1 FROM b)
      ORDER BY m.created_at DESC, m.id DESC LIMIT ${filter.limit}::int OFFSET ${filter.offset}::int)
    SELECT EXISTS (SELECT 1 FROM b) AS board_found,
      (SELECT count(*)::int FROM board_memory m WHERE ${where}) AS total,
      (SELECT coalesce(json_agg(page ORDER BY page.created_at DESC, page.id DESC), '[]'::json) FROM page) AS items`);
  const [row] = rows;
  if (!row?.board_found) throw boardNotFound();
  const items = parseJson<Record<string, unknown>[]>(row.items);
  return { items: items.map((r) => fromRow(boardMemory, r)), total: Number(row.total) };
}
