/**
 * Agents: each belongs to one board and holds at most one token. The token is shown once, stored
 * as SHA-256 (looked up by its unique hash), rotated or revoked in one statement. A board has at
 * most one lead and at most `max_agents` workers.
 */
import { and, desc, eq, type SQL, sql } from 'drizzle-orm';
import { AGENT_TOKEN_PREFIX } from '../auth/authenticate';
import type { Database } from '../db/client';
import { pgErrorCode, UNIQUE_VIOLATION } from '../db/errors';
import { pageOf } from '../db/paging';
import { fromRow } from '../db/rows';
import { agents, boards, organizations } from '../db/schema';
import { randomSecret, sha256Hex } from '../lib/crypto';
import { AppError } from '../lib/errors';
import type { ActivityEvent } from './activity';
import { type ChangeResult, changeResult, changeStatement, jsonb, runChange } from './activity-feed';
import { type AuditContext, mutateWithAudit } from './audit';
import { type BoardViewer, boardNotFound, boardOpenTo, readableBoard } from './boards';

export type Agent = typeof agents.$inferSelect;

/** How much of a token the agent's record keeps: enough to tell tokens apart in logs and lists. */
export const TOKEN_DISPLAY_LENGTH = AGENT_TOKEN_PREFIX.length + 6;

async function mintToken() {
  const token = randomSecret(AGENT_TOKEN_PREFIX);
  return { token, hash: await sha256Hex(token), prefix: token.slice(0, TOKEN_DISPLAY_LENGTH) };
}

export interface NewAgent {
  boardId: string;
  name: string;
  isLead: boolean;
}

export const AGENT_STATUSES = ['provisioning', 'online', 'offline', 'updating', 'deleting'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

/** An agent silent for this long reads as offline, whatever its stored status. */
export const OFFLINE_AFTER_MS = 10 * 60 * 1000;

/** The status every read shows: `online` turns `offline` after 10 minutes without a sign of life. */
export function effectiveStatus(agent: Pick<Agent, 'status' | 'lastSeenAt'>, now = Date.now()): AgentStatus {
  const status = agent.status as AgentStatus;
  if (status !== 'online') return status;
  if (!agent.lastSeenAt || now - agent.lastSeenAt.getTime() > OFFLINE_AFTER_MS) return 'offline';
  return status;
}

/**
 * Locks the board row, so cap checks on it run one at a time: the next statement of the same
 * batch takes a fresh snapshot and sees every agent committed by the previous holder. (A lock
 * taken inside the checking statement itself would not: its snapshot predates the wait.)
 * `NO KEY UPDATE` leaves foreign-key checks of concurrent task inserts unblocked.
 */
const lockBoard = (boardId: SQL, organizationId: string) =>
  sql`SELECT id FROM boards WHERE id = ${boardId} AND organization_id = ${organizationId}::uuid FOR NO KEY UPDATE`;

const agentActivity = (type: string, verb: string, agentId: SQL = sql`changed.id`) => ({
  type,
  message: sql`format(${`Agent "%s" ${verb}`}::text, changed.name)`,
  boardId: sql`changed.board_id`,
  agentId,
  payload: sql`jsonb_build_object('agent_id', changed.id, 'name', changed.name, 'is_lead', changed.is_lead)`,
});

function leadConflictOr(err: unknown): never {
  if (pgErrorCode(err) === UNIQUE_VIOLATION) {
    throw new AppError(409, 'lead_exists', 'This board already has a lead agent.');
  }
  throw err;
}

const capReached = (maxAgents: unknown) =>
  new AppError(409, 'agent_limit_reached', 'The board already has as many worker agents as max_agents allows.', {
    details: { max_agents: Number(maxAgents) },
  });

/**
 * The board must belong to the organization (404 otherwise). A worker is admitted only while the
 * board has fewer than `max_agents` workers; a second lead hits the one-lead index (409). One
 * batch, one transaction: the first statement locks the board row, so concurrent creates queue
 * there and the insert's count sees every worker committed before it.
 */
export async function createAgent(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: NewAgent,
): Promise<{ agent: Agent; token: string; events: ActivityEvent[] }> {
  const { token, hash, prefix } = await mintToken();
  const boardId = sql`${input.boardId}::uuid`;
  const statement = changeStatement(ctx, {
    before: [
      sql`b AS (SELECT id, organization_id, max_agents,
        (SELECT count(*) FROM agents WHERE agents.board_id = boards.id AND NOT agents.is_lead) AS workers
        FROM boards WHERE id = ${boardId} AND organization_id = ${organizationId}::uuid)`,
    ],
    change: sql`INSERT INTO agents (organization_id, board_id, name, is_lead, token_hash, token_prefix)
      SELECT b.organization_id, b.id, ${input.name}::text, ${input.isLead}::boolean, ${hash}::text, ${prefix}::text
      FROM b WHERE ${input.isLead}::boolean OR b.workers < b.max_agents
      RETURNING *`,
    audit: {
      action: 'agent.create',
      targetType: 'agent',
      details: jsonb({ name: input.name, board_id: input.boardId, is_lead: input.isLead }),
    },
    activity: [agentActivity('agent.created', 'created')],
    extra: { max_agents: sql`(SELECT max_agents FROM b)` },
  });
  let result: ChangeResult;
  try {
    const [, changed] = await db.batch([
      db.execute(lockBoard(boardId, organizationId)),
      db.execute<Record<string, unknown>>(statement),
    ]);
    result = changeResult(changed.rows[0]);
  } catch (err) {
    leadConflictOr(err);
  }
  const [row] = result.rows;
  if (!row) {
    if (result.extra.max_agents === null || result.extra.max_agents === undefined) throw boardNotFound();
    throw capReached(result.extra.max_agents);
  }
  return { agent: fromRow(agents, row), token, events: result.events };
}

export interface AgentChanges {
  name?: string;
  isLead?: boolean;
  status?: AgentStatus;
}

/**
 * Renames, promotes or demotes, or sets the lifecycle status. Promoting onto a board that has a
 * lead is 409 `lead_exists`; demoting the lead into a full board of workers is 409
 * `agent_limit_reached` (checked under the same board lock as creation).
 */
export async function updateAgent(
  db: Database,
  ctx: AuditContext,
  viewer: BoardViewer,
  id: string,
  input: AgentChanges,
): Promise<{ agent: Agent; events: ActivityEvent[] }> {
  const sets: SQL[] = [sql`updated_at = now()`];
  if (input.name !== undefined) sets.push(sql`name = ${input.name}::text`);
  if (input.isLead !== undefined) sets.push(sql`is_lead = ${input.isLead}::boolean`);
  if (input.status !== undefined) sets.push(sql`status = ${input.status}::text`);
  const changes = { name: input.name, is_lead: input.isLead, status: input.status };
  const demoting = input.isLead === false;
  const statement = changeStatement(ctx, {
    before: [
      sql`a AS (SELECT agents.id, agents.is_lead AS was_lead, boards.max_agents,
        (SELECT count(*) FROM agents w WHERE w.board_id = agents.board_id AND NOT w.is_lead) AS workers
        FROM agents JOIN boards ON boards.id = agents.board_id
        WHERE agents.id = ${id}::uuid AND agents.organization_id = ${viewer.organizationId}::uuid
          AND ${boardOpenTo(db, viewer, agents.boardId)})`,
    ],
    change: sql`UPDATE agents SET ${sql.join(sets, sql`, `)} FROM a
      WHERE agents.id = a.id AND (NOT (a.was_lead AND ${demoting}::boolean) OR a.workers < a.max_agents)
      RETURNING agents.*`,
    audit: { action: 'agent.update', targetType: 'agent', details: jsonb(changes) },
    activity: [agentActivity('agent.updated', 'updated')],
    extra: { max_agents: sql`(SELECT max_agents FROM a)` },
  });
  let result: ChangeResult;
  try {
    if (demoting) {
      const boardOf = sql`(SELECT board_id FROM agents WHERE id = ${id}::uuid)`;
      const [, changed] = await db.batch([
        db.execute(lockBoard(boardOf, viewer.organizationId)),
        db.execute<Record<string, unknown>>(statement),
      ]);
      result = changeResult(changed.rows[0]);
    } else {
      result = changeResult((await db.execute<Record<string, unknown>>(statement)).rows[0]);
    }
  } catch (err) {
    leadConflictOr(err);
  }
  const [row] = result.rows;
  if (!row) {
    if (result.extra.max_agents === null || result.extra.max_agents === undefined) throw notFound();
    throw capReached(result.extra.max_agents);
  }
  return { agent: fromRow(agents, row), events: result.events };
}

/** Deletes the agent (its tasks become unassigned); the event keeps its id in the payload. */
export async function deleteAgent(
  db: Database,
  ctx: AuditContext,
  viewer: BoardViewer,
  id: string,
): Promise<{ events: ActivityEvent[] }> {
  const { rows, events } = await runChange(db, ctx, {
    change: sql`DELETE FROM agents
      WHERE id = ${id}::uuid AND organization_id = ${viewer.organizationId}::uuid
        AND ${boardOpenTo(db, viewer, agents.boardId)}
      RETURNING *`,
    audit: { action: 'agent.delete', targetType: 'agent', details: sql`jsonb_build_object('name', changed.name)` },
    activity: [agentActivity('agent.deleted', 'deleted', sql`NULL::uuid`)],
  });
  if (!rows.length) throw notFound();
  return { events };
}

/**
 * The agent says it is alive: `last_seen_at` now, and `online` unless the gateway is updating or
 * deleting it. Only a change of status is audited and recorded as activity (`agent.online`).
 */
export async function recordHeartbeat(
  db: Database,
  ctx: AuditContext,
  agentId: string,
): Promise<{ agent: Agent; events: ActivityEvent[] }> {
  const { rows, events } = await runChange(db, ctx, {
    before: [sql`old AS (SELECT id, status FROM agents WHERE id = ${agentId}::uuid)`],
    change: sql`UPDATE agents SET last_seen_at = now(),
        status = CASE WHEN agents.status IN ('deleting', 'updating') THEN agents.status ELSE 'online' END
      FROM old WHERE agents.id = old.id
      RETURNING agents.*, old.status AS previous_status`,
    after: [sql`came_online AS (SELECT * FROM changed WHERE status = 'online' AND previous_status <> 'online')`],
    audit: {
      action: 'agent.online',
      targetType: 'agent',
      details: sql`jsonb_build_object('previous_status', changed.previous_status)`,
      from: sql`came_online changed`,
    },
    activity: [{ ...agentActivity('agent.online', 'is online'), from: sql`came_online changed` }],
  });
  const [row] = rows;
  if (!row) throw notFound();
  return { agent: fromRow(agents, row), events };
}

export async function listAgents(
  db: Database,
  viewer: BoardViewer,
  filter: { boardId?: string; limit: number; offset: number },
) {
  const where = and(
    eq(agents.organizationId, viewer.organizationId),
    filter.boardId ? eq(agents.boardId, filter.boardId) : undefined,
    readableBoard(db, viewer, agents.boardId),
  );
  return pageOf(db, agents, where, [desc(agents.createdAt), desc(agents.id)], filter);
}

/** 404 for an agent of another organization, or on a board the viewer may not read. */
export async function getAgent(db: Database, viewer: BoardViewer, id: string): Promise<Agent> {
  const [agent] = await db
    .select()
    .from(agents)
    .where(
      and(
        eq(agents.id, id),
        eq(agents.organizationId, viewer.organizationId),
        readableBoard(db, viewer, agents.boardId),
      ),
    );
  if (!agent) throw notFound();
  return agent;
}

/** A new token replaces the old one in the same row, so the old one stops working at once. */
export async function rotateAgentToken(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  id: string,
): Promise<{ agent: Agent; token: string }> {
  const { token, hash, prefix } = await mintToken();
  const update = db
    .update(agents)
    .set({ tokenHash: hash, tokenPrefix: prefix, tokenRevokedAt: null, updatedAt: sql`now()` })
    .where(and(eq(agents.id, id), eq(agents.organizationId, organizationId)))
    .returning();
  const [row] = await mutateWithAudit(db, ctx, { action: 'agent.token_rotate', targetType: 'agent' }, update);
  if (!row) throw notFound();
  return { agent: fromRow(agents, row), token };
}

/**
 * Clears the token hash, so the next request with the token finds nothing (401). Revoking again
 * keeps the first revocation time; every call is audited under `action`.
 */
export async function revokeAgentToken(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  id: string,
  action: 'agent.token_revoke' | 'agent.revoke_all' = 'agent.token_revoke',
): Promise<Agent> {
  const update = db
    .update(agents)
    .set({
      tokenHash: null,
      tokenRevokedAt: sql`coalesce(${agents.tokenRevokedAt}, now())`,
      updatedAt: sql`now()`,
    })
    .where(and(eq(agents.id, id), eq(agents.organizationId, organizationId)))
    .returning();
  const [row] = await mutateWithAudit(db, ctx, { action, targetType: 'agent' }, update);
  if (!row) throw notFound();
  return fromRow(agents, row);
}

/** The calling agent's own record (its token was verified moments ago). */
export async function getAgentSelf(db: Database, id: string): Promise<Agent> {
  const [agent] = await db.select().from(agents).where(eq(agents.id, id));
  if (!agent) throw notFound();
  return agent;
}

/** Who the calling agent is: itself, its board and its organization, in one query. */
export async function getAgentContext(db: Database, id: string) {
  const [row] = await db
    .select({ agent: agents, board: boards, organization: { id: organizations.id, name: organizations.name } })
    .from(agents)
    .innerJoin(boards, eq(boards.id, agents.boardId))
    .innerJoin(organizations, eq(organizations.id, agents.organizationId))
    .where(eq(agents.id, id));
  if (!row) throw notFound();
  return row;
}

const notFound = () => new AppError(404, 'not_found', 'No such agent.');
