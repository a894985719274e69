/**
 * A board's view model in one round trip: the board, its tasks (with assignee and approval
 * counts), agents, pending approvals and recent chat, as JSON built by one SQL statement.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { fromRow, parseJson } from '../db/rows';
import { agents, boards } from '../db/schema';
import { boardMemory, tasks } from '../db/schema-domain';
import type { Agent } from './agents';
import { type Approval, approvalFromRow } from './approvals';
import type { MemoryEntry } from './board-memory';
import { type Board, type BoardViewer, boardNotFound, boardOpenTo } from './boards';

export type SnapshotTask = typeof tasks.$inferSelect & {
  assignee: { id: string; name: string } | null;
  approvalCounts: { pending: number; approved: number };
};

export interface BoardSnapshot {
  board: Board;
  tasks: SnapshotTask[];
  agents: Agent[];
  pendingApprovals: Approval[];
  chat: MemoryEntry[];
}

/** How many chat messages the snapshot carries (newest first). */
export const SNAPSHOT_CHAT_LIMIT = 50;

export async function boardSnapshot(db: Database, viewer: BoardViewer, boardId: string): Promise<BoardSnapshot> {
  const { rows } = await db.execute<Record<string, unknown>>(sql`
    SELECT row_to_json(boards) AS board,
      (SELECT coalesce(json_agg(x ORDER BY x.created_at, x.id), '[]'::json) FROM (
        SELECT t.*,
          CASE WHEN ag.id IS NULL THEN NULL ELSE json_build_object('id', ag.id, 'name', ag.name) END AS assignee,
          (SELECT count(*) FROM approval_tasks at JOIN approvals ap ON ap.id = at.approval_id
            WHERE at.task_id = t.id AND ap.status = 'pending')::int AS approvals_pending,
          (SELECT count(*) FROM approval_tasks at JOIN approvals ap ON ap.id = at.approval_id
            WHERE at.task_id = t.id AND ap.status = 'approved')::int AS approvals_approved
        FROM tasks t LEFT JOIN agents ag ON ag.id = t.assignee_agent_id
        WHERE t.board_id = boards.id) x) AS tasks,
      (SELECT coalesce(json_agg(a ORDER BY a.is_lead DESC, a.created_at, a.id), '[]'::json)
        FROM agents a WHERE a.board_id = boards.id) AS agents,
      (SELECT coalesce(json_agg(p ORDER BY p.created_at, p.id), '[]'::json) FROM (
        SELECT a.*, coalesce((SELECT array_agg(at.task_id ORDER BY at.task_id) FROM approval_tasks at
          WHERE at.approval_id = a.id), '{}'::uuid[]) AS task_ids
        FROM approvals a WHERE a.board_id = boards.id AND a.status = 'pending') p) AS pending_approvals,
      (SELECT coalesce(json_agg(m ORDER BY m.created_at DESC, m.id DESC), '[]'::json) FROM (
        SELECT * FROM board_memory WHERE board_memory.board_id = boards.id AND 'chat' = ANY(board_memory.tags)
        ORDER BY created_at DESC, id DESC LIMIT ${SNAPSHOT_CHAT_LIMIT}::int) m) AS chat
    FROM boards
    WHERE boards.id = ${boardId}::uuid AND boards.organization_id = ${viewer.organizationId}::uuid
      AND ${boardOpenTo(db, viewer, boards.id)}`);
  const [row] = rows;
  if (!row) throw boardNotFound();
  const taskRows = parseJson<Record<string, unknown>[]>(row.tasks);
  return {
    board: fromRow(boards, parseJson<Record<string, unknown>>(row.board)),
    tasks: taskRows.map((t) => ({
      ...fromRow(tasks, t),
      assignee: (t.assignee as SnapshotTask['assignee']) ?? null,
      approvalCounts: { pending: Number(t.approvals_pending), approved: Number(t.approvals_approved) },
    })),
    agents: parseJson<Record<string, unknown>[]>(row.agents).map((a) => fromRow(agents, a)),
    pendingApprovals: parseJson<Record<string, unknown>[]>(row.pending_approvals).map(approvalFromRow),
    chat: parseJson<Record<string, unknown>[]>(row.chat).map((m) => fromRow(boardMemory, m)),
  };
}
