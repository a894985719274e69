/** Boards: create, list, read, update and delete, limited to the boards the caller may read or write. */
import { and, desc, eq, exists, or, type SQL, sql } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import type { Principal } from '../auth/principal';
import { roleAtLeast } from '../auth/principal';
import type { Database } from '../db/client';
import { pageOf } from '../db/paging';
import { fromRow } from '../db/rows';
import { boards, memberBoardAccess } from '../db/schema';
import { AppError } from '../lib/errors';
import type { ActivityEvent } from './activity';
import { runChange } from './activity-feed';
import type { AuditContext } from './audit';

export type Board = typeof boards.$inferSelect;

/**
 * Which boards of an organization a caller may read (or, with `access: 'write'`, change): all of
 * them (admins, owners, members with an all-boards flag, API keys, whose scopes are checked by the
 * route), or only those a `member_board_access` row opens to `memberId`.
 */
export interface BoardViewer {
  organizationId: string;
  /** Null when every board of the organization is open to the viewer. */
  memberId: string | null;
  /** Read unless said otherwise; write access implies read. */
  access?: 'read' | 'write';
}

/** The viewer for a principal already authorized in `organizationId`. Write access implies read. */
export function boardViewer(
  principal: Principal,
  organizationId: string,
  access: 'read' | 'write' = 'read',
): BoardViewer {
  if (principal.kind === 'user' && principal.membership) {
    const m = principal.membership;
    const flag = access === 'write' ? m.allBoardsWrite : m.allBoardsRead || m.allBoardsWrite;
    const all = roleAtLeast(m.role, 'admin') || flag;
    return { organizationId, memberId: all ? null : m.id, access };
  }
  return { organizationId, memberId: null, access };
}

/** The viewer that may change a board's content (tasks, approvals, memory). */
export const boardEditor = (principal: Principal, organizationId: string): BoardViewer =>
  boardViewer(principal, organizationId, 'write');

/** A condition on `boardId` that holds for boards `viewer` may read or write (undefined: no restriction). */
export function readableBoard(db: Database, viewer: BoardViewer, boardId: AnyPgColumn): SQL | undefined {
  if (viewer.memberId === null) return undefined;
  const grant =
    viewer.access === 'write'
      ? eq(memberBoardAccess.canWrite, true)
      : or(eq(memberBoardAccess.canRead, true), eq(memberBoardAccess.canWrite, true));
  return exists(
    db
      .select({ one: sql`1` })
      .from(memberBoardAccess)
      .where(and(eq(memberBoardAccess.memberId, viewer.memberId), eq(memberBoardAccess.boardId, boardId), grant)),
  );
}

/** Read and write viewers of one principal: lets a service tell "cannot see" (404) from "cannot change" (403). */
export interface BoardAccess {
  read: BoardViewer;
  write: BoardViewer;
}

export const boardAccess = (principal: Principal, organizationId: string): BoardAccess => ({
  read: boardViewer(principal, organizationId, 'read'),
  write: boardViewer(principal, organizationId, 'write'),
});

/** Full access to every board of an organization (agents on their own board, after the route pinned it). */
export const fullBoardAccess = (organizationId: string): BoardAccess => ({
  read: { organizationId, memberId: null, access: 'read' },
  write: { organizationId, memberId: null, access: 'write' },
});

export const boardReadOnly = () =>
  new AppError(403, 'forbidden', 'You can read this board but not change it (board write access needed).');

/** `readableBoard` for raw SQL: always a condition (`true` when unrestricted). */
export function boardOpenTo(db: Database, viewer: BoardViewer, boardId: AnyPgColumn): SQL {
  return readableBoard(db, viewer, boardId) ?? sql`true`;
}

/** The settable fields of a board, as they are named on the wire. */
export interface BoardFields {
  name?: string;
  description?: string;
  group_id?: string | null;
  gateway_id?: string | null;
  require_approval_for_done?: boolean;
  require_review_before_done?: boolean;
  comment_required_for_review?: boolean;
  block_status_changes_with_pending_approval?: boolean;
  only_lead_can_change_status?: boolean;
  max_agents?: number;
}

const CASTS: Record<keyof BoardFields, string> = {
  name: 'text',
  description: 'text',
  group_id: 'uuid',
  gateway_id: 'uuid',
  require_approval_for_done: 'boolean',
  require_review_before_done: 'boolean',
  comment_required_for_review: 'boolean',
  block_status_changes_with_pending_approval: 'boolean',
  only_lead_can_change_status: 'boolean',
  max_agents: 'int',
};

/** The provided fields as (column, typed parameter) pairs; columns are the wire names. */
function provided(input: BoardFields): [string, SQL][] {
  return (Object.keys(CASTS) as (keyof BoardFields)[])
    .filter((k) => input[k] !== undefined)
    .map((k) => [k, sql`${input[k]}::${sql.raw(CASTS[k])}`]);
}

/** A CTE `g` with one row when the group is absent or belongs to the organization. */
function groupCheck(organizationId: string, groupId: string | null | undefined): SQL {
  return groupId
    ? sql`g AS (SELECT 1 AS ok FROM board_groups WHERE id = ${groupId}::uuid AND organization_id = ${organizationId}::uuid)`
    : sql`g AS (SELECT 1 AS ok)`;
}

/** A CTE `gw` with one row when the gateway is absent or belongs to the organization. */
function gatewayCheck(organizationId: string, gatewayId: string | null | undefined): SQL {
  return gatewayId
    ? sql`gw AS (SELECT 1 AS ok FROM gateways WHERE id = ${gatewayId}::uuid AND organization_id = ${organizationId}::uuid)`
    : sql`gw AS (SELECT 1 AS ok)`;
}

const noSuchGateway = () =>
  new AppError(422, 'validation_failed', 'gateway_id does not name a gateway of this organization.', {
    details: { issues: [{ path: 'gateway_id', message: 'no such gateway in this organization' }] },
  });

const noSuchGroup = () =>
  new AppError(422, 'validation_failed', 'group_id does not name a board group of this organization.', {
    details: { issues: [{ path: 'group_id', message: 'no such board group in this organization' }] },
  });

export async function createBoardWithActivity(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: BoardFields & { name: string },
): Promise<{ board: Board; events: ActivityEvent[] }> {
  const fields = provided(input);
  const columns = sql.raw(['organization_id', ...fields.map(([c]) => c)].join(', '));
  const values = sql.join([sql`${organizationId}::uuid`, ...fields.map(([, v]) => v)], sql`, `);
  const { rows, events, extra } = await runChange(db, ctx, {
    before: [groupCheck(organizationId, input.group_id), gatewayCheck(organizationId, input.gateway_id)],
    change: sql`INSERT INTO boards (${columns}) SELECT ${values} FROM g, gw RETURNING *`,
    audit: { action: 'board.create', targetType: 'board', details: sql`jsonb_build_object('name', changed.name)` },
    activity: [
      {
        type: 'board.created',
        message: sql`format('Board "%s" created', changed.name)`,
        boardId: sql`changed.id`,
        payload: sql`jsonb_build_object('name', changed.name)`,
      },
    ],
    extra: { group_ok: sql`EXISTS (SELECT 1 FROM g)` },
  });
  const [row] = rows;
  if (!row) throw extra.group_ok ? noSuchGateway() : noSuchGroup();
  return { board: fromRow(boards, row), events };
}

/** Kept for callers that need only the board. */
export async function createBoard(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: BoardFields & { name: string },
): Promise<Board> {
  return (await createBoardWithActivity(db, ctx, organizationId, input)).board;
}

/** One statement: the group check, the update, its audit and activity rows. */
export async function updateBoard(
  db: Database,
  ctx: AuditContext,
  viewer: BoardViewer,
  id: string,
  input: BoardFields,
): Promise<{ board: Board; events: ActivityEvent[] }> {
  const fields = provided(input);
  const sets = sql.join([...fields.map(([c, v]) => sql`${sql.raw(c)} = ${v}`), sql`updated_at = now()`], sql`, `);
  const changes = fields.map(([c]) => c);
  const { rows, events, extra } = await runChange(db, ctx, {
    before: [groupCheck(viewer.organizationId, input.group_id), gatewayCheck(viewer.organizationId, input.gateway_id)],
    change: sql`UPDATE boards SET ${sets}
      WHERE id = ${id}::uuid AND organization_id = ${viewer.organizationId}::uuid
        AND ${boardOpenTo(db, viewer, boards.id)} AND EXISTS (SELECT 1 FROM g) AND EXISTS (SELECT 1 FROM gw)
      RETURNING *`,
    audit: {
      action: 'board.update',
      targetType: 'board',
      details: sql`jsonb_build_object('changes', ${JSON.stringify(changes)}::jsonb)`,
    },
    activity: [
      {
        type: 'board.updated',
        message: sql`format('Board "%s" updated', changed.name)`,
        boardId: sql`changed.id`,
        payload: sql`jsonb_build_object('changes', ${JSON.stringify(changes)}::jsonb)`,
      },
    ],
    extra: { group_ok: sql`EXISTS (SELECT 1 FROM g)`, gateway_ok: sql`EXISTS (SELECT 1 FROM gw)` },
  });
  const [row] = rows;
  if (!row) throw !extra.group_ok ? noSuchGroup() : !extra.gateway_ok ? noSuchGateway() : boardNotFound();
  return { board: fromRow(boards, row), events };
}

/**
 * One statement deletes the board; foreign keys cascade to its tasks, agents, approvals, memory
 * and comments, and detach its activity history. The `board.deleted` event names no board (the
 * row is gone) and keeps its id in the payload.
 */
export async function deleteBoard(
  db: Database,
  ctx: AuditContext,
  viewer: BoardViewer,
  id: string,
): Promise<{ events: ActivityEvent[] }> {
  const { rows, events } = await runChange(db, ctx, {
    change: sql`DELETE FROM boards
      WHERE id = ${id}::uuid AND organization_id = ${viewer.organizationId}::uuid AND ${boardOpenTo(db, viewer, boards.id)}
      RETURNING *`,
    audit: { action: 'board.delete', targetType: 'board', details: sql`jsonb_build_object('name', changed.name)` },
    activity: [
      {
        type: 'board.deleted',
        message: sql`format('Board "%s" deleted', changed.name)`,
        boardId: sql`NULL::uuid`,
        payload: sql`jsonb_build_object('board_id', changed.id, 'name', changed.name)`,
      },
    ],
  });
  if (!rows.length) throw boardNotFound();
  return { events };
}

export async function listBoards(
  db: Database,
  viewer: BoardViewer,
  page: { limit: number; offset: number; groupId?: string },
) {
  const where = and(
    eq(boards.organizationId, viewer.organizationId),
    page.groupId ? eq(boards.groupId, page.groupId) : undefined,
    readableBoard(db, viewer, boards.id),
  );
  return pageOf(db, boards, where, [desc(boards.createdAt), desc(boards.id)], page);
}

/** 404 for a board of another organization and for one the viewer may not read alike. */
export async function getBoard(db: Database, viewer: BoardViewer, id: string): Promise<Board> {
  const [board] = await db
    .select()
    .from(boards)
    .where(
      and(eq(boards.id, id), eq(boards.organizationId, viewer.organizationId), readableBoard(db, viewer, boards.id)),
    );
  if (!board) throw boardNotFound();
  return board;
}

export const boardNotFound = () => new AppError(404, 'not_found', 'No such board.');
