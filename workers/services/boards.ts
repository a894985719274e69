/** Boards, first form: create, list and read, limited to the boards the caller may read. */
import { and, count, desc, eq, exists, or, type SQL, sql } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import type { Principal } from '../auth/principal';
import { roleAtLeast } from '../auth/principal';
import type { Database } from '../db/client';
import { fromRow } from '../db/rows';
import { boards, memberBoardAccess } from '../db/schema';
import { AppError } from '../lib/errors';
import { type AuditContext, mutateWithAudit } from './audit';

export type Board = typeof boards.$inferSelect;

/**
 * Which boards of an organization a caller may read: all of them (admins, owners, members with
 * an all-boards flag, API keys), or only those a `member_board_access` row opens to `memberId`.
 */
export interface BoardViewer {
  organizationId: string;
  /** Null when every board of the organization is readable. */
  memberId: string | null;
}

/** The viewer for a principal already authorized in `organizationId`. Write access implies read. */
export function boardViewer(principal: Principal, organizationId: string): BoardViewer {
  if (principal.kind === 'user' && principal.membership) {
    const m = principal.membership;
    const all = roleAtLeast(m.role, 'admin') || m.allBoardsRead || m.allBoardsWrite;
    return { organizationId, memberId: all ? null : m.id };
  }
  return { organizationId, memberId: null };
}

/** A condition on `boardId` that holds for boards `viewer` may read (undefined: no restriction). */
export function readableBoard(db: Database, viewer: BoardViewer, boardId: AnyPgColumn): SQL | undefined {
  if (viewer.memberId === null) return undefined;
  return exists(
    db
      .select({ one: sql`1` })
      .from(memberBoardAccess)
      .where(
        and(
          eq(memberBoardAccess.memberId, viewer.memberId),
          eq(memberBoardAccess.boardId, boardId),
          or(eq(memberBoardAccess.canRead, true), eq(memberBoardAccess.canWrite, true)),
        ),
      ),
  );
}

export async function createBoard(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: { name: string },
): Promise<Board> {
  const insert = db.insert(boards).values({ organizationId, name: input.name }).returning();
  const [row] = await mutateWithAudit(
    db,
    ctx,
    { action: 'board.create', targetType: 'board', details: { name: input.name } },
    insert,
  );
  if (!row) throw new Error('board insert returned nothing');
  return fromRow(boards, row);
}

export async function listBoards(db: Database, viewer: BoardViewer, page: { limit: number; offset: number }) {
  const where = and(eq(boards.organizationId, viewer.organizationId), readableBoard(db, viewer, boards.id));
  const [items, [total]] = await db.batch([
    db
      .select()
      .from(boards)
      .where(where)
      .orderBy(desc(boards.createdAt), desc(boards.id))
      .limit(page.limit)
      .offset(page.offset),
    db.select({ value: count() }).from(boards).where(where),
  ]);
  return { items, total: total?.value ?? 0 };
}

/** 404 for a board of another organization and for one the viewer may not read alike. */
export async function getBoard(db: Database, viewer: BoardViewer, id: string): Promise<Board> {
  const [board] = await db
    .select()
    .from(boards)
    .where(
      and(eq(boards.id, id), eq(boards.organizationId, viewer.organizationId), readableBoard(db, viewer, boards.id)),
    );
  if (!board) throw new AppError(404, 'not_found', 'No such board.');
  return board;
}
