/**
 * Tickets for the live-events WebSocket. Browsers cannot set headers on a WebSocket, so an
 * authenticated `POST /api/v1/events/ticket` mints a short-lived, single-use ticket that the
 * upgrade presents as `?ticket=`. Only its SHA-256 is stored.
 */
import { sql } from 'drizzle-orm';
import type { Principal } from '../auth/principal';
import type { Database } from '../db/client';
import { boards } from '../db/schema';
import { randomSecret, sha256Hex } from '../lib/crypto';
import { AppError } from '../lib/errors';
import { type AuditContext, auditRowsFrom } from './audit';
import { boardViewer, readableBoard } from './boards';

export const EVENT_TICKET_PREFIX = 'mcet_';
export const EVENT_TICKET_TTL_SECONDS = 30;
/** Longer than any secret this API mints; anything longer is not a ticket. */
export const EVENT_TICKET_MAX_LENGTH = 100;

export interface EventTicket {
  ticket: string;
  expiresAt: Date;
}

/** What a redeemed ticket lets its holder subscribe to. */
export interface EventTicketGrant {
  organizationId: string;
  principalType: 'user' | 'api_key';
  principalId: string;
  /** Null: every board of the organization. */
  boardId: string | null;
}

/**
 * Mints a ticket for `principal` (already authorized to read in `organizationId`). A board must
 * be readable (404 otherwise, as for any board); the whole organization's stream needs read
 * access to every board. One statement: expired tickets purged, ticket and audit row written.
 */
export async function issueEventTicket(
  db: Database,
  ctx: AuditContext,
  principal: Principal,
  organizationId: string,
  boardId: string | null,
): Promise<EventTicket> {
  if (principal.kind === 'agent') throw new AppError(403, 'forbidden', 'Agents use /api/v1/agent/*.');
  const viewer = boardViewer(principal, organizationId);
  if (boardId === null && viewer.memberId !== null) {
    throw new AppError(403, 'forbidden', 'You can read only some boards: subscribe to one with board_id.');
  }
  const readable = readableBoard(db, viewer, boards.id);
  const ticket = randomSecret(EVENT_TICKET_PREFIX);
  const [principalType, principalId] =
    principal.kind === 'user' ? (['user', principal.userId] as const) : (['api_key', principal.apiKeyId] as const);
  const result = await db.execute<{ expires_epoch: number }>(sql`
    WITH purge AS (
      DELETE FROM event_tickets WHERE ticket_hash IN (
        SELECT ticket_hash FROM event_tickets WHERE expires_at < now() - interval '1 hour' LIMIT 100)
    ), t AS (
      INSERT INTO event_tickets (ticket_hash, organization_id, principal_type, principal_id, board_id, expires_at)
      SELECT ${await sha256Hex(ticket)}, ${organizationId}::uuid, ${principalType}, ${principalId}::uuid,
             ${boardId}::uuid, now() + make_interval(secs => ${EVENT_TICKET_TTL_SECONDS})
      WHERE ${boardId}::uuid IS NULL OR EXISTS (
        SELECT 1 FROM ${boards} WHERE ${boards.id} = ${boardId}::uuid AND ${boards.organizationId} = ${organizationId}::uuid
        ${readable ? sql`AND ${readable}` : sql``})
      RETURNING board_id, expires_at
    ), audit AS (${auditRowsFrom(ctx, {
      action: 'events.ticket_issued',
      targetType: 'board',
      organizationId: sql`${organizationId}::uuid`,
      targetId: sql`t.board_id::text`,
      details: sql`jsonb_build_object('board_id', t.board_id, 'expires_at', t.expires_at)`,
      from: sql`t`,
    })})
    SELECT extract(epoch FROM expires_at)::float8 AS expires_epoch FROM t`);
  const row = result.rows[0];
  if (!row) throw new AppError(404, 'not_found', 'No such board.');
  return { ticket, expiresAt: new Date(Number(row.expires_epoch) * 1000) };
}

/**
 * Consumes a ticket in one conditional statement: unused, unexpired, for this board (or any), and
 * its credential still good (API key not revoked or expired and organization not locked; the
 * user still a member with no revoke-all since the ticket was minted). Null when any check fails.
 */
export async function redeemEventTicket(
  db: Database,
  ticket: string,
  boardId: string | null,
): Promise<EventTicketGrant | null> {
  if (!ticket.startsWith(EVENT_TICKET_PREFIX) || ticket.length > EVENT_TICKET_MAX_LENGTH) return null;
  const result = await db.execute<{
    organization_id: string;
    principal_type: 'user' | 'api_key';
    principal_id: string;
    board_id: string | null;
  }>(sql`
    UPDATE event_tickets t SET used_at = now()
    WHERE t.ticket_hash = ${await sha256Hex(ticket)} AND t.used_at IS NULL AND t.expires_at > now()
      AND (${boardId}::uuid IS NULL OR t.board_id IS NULL OR t.board_id = ${boardId}::uuid)
      AND CASE t.principal_type
        WHEN 'api_key' THEN EXISTS (
          SELECT 1 FROM api_keys k JOIN organizations o ON o.id = k.organization_id
          WHERE k.id = t.principal_id AND k.organization_id = t.organization_id AND k.revoked_at IS NULL
            AND (k.expires_at IS NULL OR k.expires_at > now()) AND o.locked_at IS NULL)
        WHEN 'user' THEN EXISTS (
          SELECT 1 FROM users u JOIN organization_members m ON m.user_id = u.id AND m.organization_id = t.organization_id
          WHERE u.id = t.principal_id AND (u.credentials_revoked_at IS NULL OR u.credentials_revoked_at < t.created_at))
        ELSE false END
    RETURNING t.organization_id, t.principal_type, t.principal_id, t.board_id`);
  const row = result.rows[0];
  if (!row) return null;
  return {
    organizationId: row.organization_id,
    principalType: row.principal_type,
    principalId: row.principal_id,
    // A board ticket stays on its board; an organization-wide one may narrow itself to a board.
    boardId: row.board_id ?? boardId,
  };
}
