/**
 * Agents, first form: each belongs to one board and holds at most one token. The token is shown
 * once, stored as SHA-256 (looked up by its unique hash), rotated or revoked in one statement.
 */
import { and, count, desc, eq, sql } from 'drizzle-orm';
import { AGENT_TOKEN_PREFIX } from '../auth/authenticate';
import type { Database } from '../db/client';
import { fromRow } from '../db/rows';
import { agents } from '../db/schema';
import { randomSecret, sha256Hex } from '../lib/crypto';
import { AppError } from '../lib/errors';
import { type AuditContext, mutateWithAudit } from './audit';
import { type BoardViewer, readableBoard } from './boards';

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

/** The board must belong to the organization: checked by the insert itself, 404 otherwise. */
export async function createAgent(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: NewAgent,
): Promise<{ agent: Agent; token: string }> {
  const { token, hash, prefix } = await mintToken();
  const insert = sql`
    INSERT INTO agents (organization_id, board_id, name, is_lead, token_hash, token_prefix)
    SELECT organization_id, id, ${input.name}, ${input.isLead}, ${hash}, ${prefix}
    FROM boards WHERE id = ${input.boardId} AND organization_id = ${organizationId}
    RETURNING *`;
  const [row] = await mutateWithAudit(
    db,
    ctx,
    {
      action: 'agent.create',
      targetType: 'agent',
      details: { name: input.name, board_id: input.boardId, is_lead: input.isLead },
    },
    insert,
  );
  if (!row) throw new AppError(404, 'not_found', 'No such board.');
  return { agent: fromRow(agents, row), token };
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
  const [items, [total]] = await db.batch([
    db
      .select()
      .from(agents)
      .where(where)
      .orderBy(desc(agents.createdAt), desc(agents.id))
      .limit(filter.limit)
      .offset(filter.offset),
    db.select({ value: count() }).from(agents).where(where),
  ]);
  return { items, total: total?.value ?? 0 };
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

const notFound = () => new AppError(404, 'not_found', 'No such agent.');
