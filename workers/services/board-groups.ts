/** Board groups: named sets of boards in an organization. Deleting one detaches its boards. */
import { and, count, desc, eq, type SQL, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { fromRow } from '../db/rows';
import { boardGroups, boards } from '../db/schema';
import { AppError } from '../lib/errors';
import type { ActivityEvent } from './activity';
import { runChange } from './activity-feed';
import type { AuditContext } from './audit';

export type BoardGroup = typeof boardGroups.$inferSelect & { boardCount: number };

export interface BoardGroupFields {
  name?: string;
  description?: string;
}

const withCount = (row: Record<string, unknown>, boardCount = 0): BoardGroup => ({
  ...fromRow(boardGroups, row),
  boardCount,
});

const activity = (type: string, verb: string) => ({
  type,
  message: sql`format(${`Board group "%s" ${verb}`}::text, changed.name)`,
  boardId: sql`NULL::uuid`,
  payload: sql`jsonb_build_object('board_group_id', changed.id, 'name', changed.name)`,
});

export async function createBoardGroup(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: { name: string; description?: string },
): Promise<{ group: BoardGroup; events: ActivityEvent[] }> {
  const { rows, events } = await runChange(db, ctx, {
    change: sql`INSERT INTO board_groups (organization_id, name, description)
      VALUES (${organizationId}::uuid, ${input.name}::text, ${input.description ?? ''}::text) RETURNING *`,
    audit: {
      action: 'board_group.create',
      targetType: 'board_group',
      details: sql`jsonb_build_object('name', changed.name)`,
    },
    activity: [activity('board_group.created', 'created')],
  });
  const [row] = rows;
  if (!row) throw new Error('board group insert returned nothing');
  return { group: withCount(row), events };
}

const boardCount = sql<number>`(SELECT count(*)::int FROM boards WHERE boards.group_id = ${boardGroups.id})`;

export async function listBoardGroups(db: Database, organizationId: string, page: { limit: number; offset: number }) {
  const where = eq(boardGroups.organizationId, organizationId);
  const [items, [total]] = await db.batch([
    db
      .select({ group: boardGroups, boardCount })
      .from(boardGroups)
      .where(where)
      .orderBy(desc(boardGroups.createdAt), desc(boardGroups.id))
      .limit(page.limit)
      .offset(page.offset),
    db.select({ value: count() }).from(boardGroups).where(where),
  ]);
  return {
    items: items.map((r) => ({ ...r.group, boardCount: Number(r.boardCount) })),
    total: total?.value ?? 0,
  };
}

export async function getBoardGroup(db: Database, organizationId: string, id: string): Promise<BoardGroup> {
  const [row] = await db
    .select({ group: boardGroups, boardCount })
    .from(boardGroups)
    .where(and(eq(boardGroups.id, id), eq(boardGroups.organizationId, organizationId)));
  if (!row) throw notFound();
  return { ...row.group, boardCount: Number(row.boardCount) };
}

export async function updateBoardGroup(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  id: string,
  input: BoardGroupFields,
): Promise<{ group: BoardGroup; events: ActivityEvent[] }> {
  const sets: SQL[] = [sql`updated_at = now()`];
  if (input.name !== undefined) sets.push(sql`name = ${input.name}::text`);
  if (input.description !== undefined) sets.push(sql`description = ${input.description}::text`);
  const changes = Object.keys(input).filter((k) => input[k as keyof BoardGroupFields] !== undefined);
  const { rows, events, extra } = await runChange(db, ctx, {
    change: sql`UPDATE board_groups SET ${sql.join(sets, sql`, `)}
      WHERE id = ${id}::uuid AND organization_id = ${organizationId}::uuid RETURNING *`,
    audit: {
      action: 'board_group.update',
      targetType: 'board_group',
      details: sql`jsonb_build_object('changes', ${JSON.stringify(changes)}::jsonb)`,
    },
    activity: [activity('board_group.updated', 'updated')],
    extra: { board_count: sql`(SELECT count(*)::int FROM ${boards} WHERE group_id = ${id}::uuid)` },
  });
  const [row] = rows;
  if (!row) throw notFound();
  return { group: withCount(row, Number(extra.board_count)), events };
}

/** The boards stay; the foreign key detaches them (group_id becomes null) in the same statement. */
export async function deleteBoardGroup(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  id: string,
): Promise<{ events: ActivityEvent[] }> {
  const { rows, events } = await runChange(db, ctx, {
    change: sql`DELETE FROM board_groups WHERE id = ${id}::uuid AND organization_id = ${organizationId}::uuid RETURNING *`,
    audit: {
      action: 'board_group.delete',
      targetType: 'board_group',
      details: sql`jsonb_build_object('name', changed.name)`,
    },
    activity: [activity('board_group.deleted', 'deleted')],
  });
  if (!rows.length) throw notFound();
  return { events };
}

const notFound = () => new AppError(404, 'not_found', 'No such board group.');
