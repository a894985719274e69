/**
 * Credential lookups: one indexed query per request, no cache (so nothing outlives a revocation).
 * "Last used" stamps ride along in the same statement, at most once a minute per credential.
 */
import { sql } from 'drizzle-orm';
import { auditRowsFrom } from './audit-rows';
import type { Database } from './client';

export type ApiKeyRow = {
  id: string;
  organization_id: string;
  scopes: string[];
  expired: boolean;
  revoked: boolean;
  locked: boolean;
};

export async function findApiKey(db: Database, keyHash: string): Promise<ApiKeyRow | undefined> {
  const result = await db.execute<ApiKeyRow>(sql`
    WITH k AS (
      SELECT k.id, k.organization_id, k.scopes,
             (k.expires_at IS NOT NULL AND k.expires_at <= now()) AS expired,
             (k.revoked_at IS NOT NULL) AS revoked,
             (o.locked_at IS NOT NULL) AS locked,
             k.last_used_at
      FROM api_keys k JOIN organizations o ON o.id = k.organization_id
      WHERE k.key_hash = ${keyHash}
    ), touch AS (
      UPDATE api_keys SET last_used_at = now()
      WHERE id = (SELECT id FROM k WHERE NOT expired AND NOT revoked)
        AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')
    )
    SELECT id, organization_id, scopes, expired, revoked, locked FROM k`);
  return result.rows[0];
}

export type AgentRow = {
  id: string;
  organization_id: string;
  board_id: string;
  is_lead: boolean;
  locked: boolean;
};

export async function findAgentByToken(db: Database, tokenHash: string): Promise<AgentRow | undefined> {
  const result = await db.execute<AgentRow>(sql`
    WITH a AS (
      SELECT a.id, a.organization_id, a.board_id, a.is_lead, (o.locked_at IS NOT NULL) AS locked, a.last_seen_at
      FROM agents a JOIN organizations o ON o.id = a.organization_id
      WHERE a.token_hash = ${tokenHash}
    ), touch AS (
      UPDATE agents SET last_seen_at = now()
      WHERE id = (SELECT id FROM a) AND (last_seen_at IS NULL OR last_seen_at < now() - interval '60 seconds')
    )
    SELECT id, organization_id, board_id, is_lead, locked FROM a`);
  return result.rows[0];
}

export type OperatorRow = {
  user_id: string;
  revoked_after: number | null;
  member_id: string | null;
  organization_id: string | null;
  role: string | null;
  all_boards_read: boolean | null;
  all_boards_write: boolean | null;
};

export async function findOperator(db: Database, subject: string): Promise<OperatorRow | undefined> {
  const result = await db.execute<OperatorRow>(sql`
    SELECT u.id AS user_id,
           extract(epoch FROM u.credentials_revoked_at)::float8 AS revoked_after,
           m.id AS member_id, m.organization_id, m.role, m.all_boards_read, m.all_boards_write
    FROM users u
    LEFT JOIN organization_members m ON m.user_id = u.id AND m.organization_id = u.active_organization_id
    WHERE u.subject = ${subject}`);
  return result.rows[0];
}

/**
 * First sight of an operator: the user, a "Personal" organization they own, and the audit row,
 * in one statement. A concurrent first request loses the race on `subject` and creates nothing.
 */
export async function provisionOperator(
  db: Database,
  user: { subject: string; email: string | null; name: string | null },
  audit: { ip: string | null; userAgent: string | null; requestId: string },
): Promise<void> {
  const userId = crypto.randomUUID();
  const orgId = crypto.randomUUID();
  await db.execute(sql`
    WITH u AS (
      INSERT INTO users (id, subject, email, name, active_organization_id)
      VALUES (${userId}, ${user.subject}, ${user.email}, ${user.name}, ${orgId})
      ON CONFLICT (subject) DO NOTHING RETURNING id
    ), o AS (
      INSERT INTO organizations (id, name) SELECT ${orgId}, 'Personal' FROM u RETURNING id
    ), m AS (
      INSERT INTO organization_members (organization_id, user_id, role, all_boards_read, all_boards_write)
      SELECT o.id, u.id, 'owner', true, true FROM o, u RETURNING id
    )
    ${auditRowsFrom(
      { ...audit, organizationId: orgId, actorType: 'user', actorId: userId },
      {
        action: 'user.provision',
        targetType: 'user',
        organizationId: sql`o.id`,
        targetId: sql`u.id::text`,
        details: sql`'{}'::jsonb`,
        from: sql`o, u`,
      },
    )}`);
}
