/** Publishing committed activity to the organization's event hub (durable-objects/event-hub.ts). */
import { sql } from 'drizzle-orm';
import { HUB_HEADERS } from '../../durable-objects/event-hub';
import type { Database } from '../db/client';
import { log } from '../lib/log';
import type { ActivityEvent } from './activity';
import type { EventTicketGrant } from './event-tickets';
import { closeGatewaySubscribers } from './gateway-sessions';
import { gatewayIds } from './gateways';

/** The hub has no public address; the host only makes the URL well-formed. */
const HUB_ORIGIN = 'https://event-hub.internal';

function hub(env: Env, organizationId: string): DurableObjectStub {
  return env.EVENT_HUB.get(env.EVENT_HUB.idFromName(organizationId));
}

/**
 * Sends committed events to the organization's hub. Never throws: a lost publish shows up to
 * subscribers as a sequence gap, which they fill from `GET /api/v1/activity?after_id=`.
 */
export async function publishEvents(env: Env, organizationId: string, events: ActivityEvent[]): Promise<void> {
  if (events.length === 0) return;
  try {
    const res = await hub(env, organizationId).fetch(`${HUB_ORIGIN}/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    if (!res.ok) throw new Error(`hub answered ${res.status}: ${await res.text()}`);
    await res.body?.cancel();
  } catch (err) {
    log('error', 'events.publish_failed', {
      organization_id: organizationId,
      event_ids: events.map((e) => e.id),
      error: (err as Error).message,
    });
  }
}

export type SocketSelector = { principalIds: string[] } | { all: true };

/**
 * Closes live-event sockets in one organization: a revoked credential's (code 4401) or, on lock,
 * all of them (4423). Never throws, so it cannot fail the revocation that called it.
 */
export async function closeEventSockets(env: Env, organizationId: string, selector: SocketSelector): Promise<void> {
  const body = 'all' in selector ? { all: true } : { principal_ids: selector.principalIds };
  if ('principalIds' in selector && selector.principalIds.length === 0) return;
  try {
    const res = await hub(env, organizationId).fetch(`${HUB_ORIGIN}/close`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`hub answered ${res.status}`);
    await res.body?.cancel();
  } catch (err) {
    log('error', 'events.close_failed', { organization_id: organizationId, error: (err as Error).message });
  }
}

/**
 * Closes live sockets of both kinds in one organization: its event hub's and its gateways' event
 * streams (revoked principals 4401, or all on lock 4423). Never throws.
 */
export async function closeLiveSockets(
  env: Env,
  db: Database,
  organizationId: string,
  selector: SocketSelector,
): Promise<void> {
  await closeEventSockets(env, organizationId, selector);
  const gateways = await gatewayIds(db, organizationId).catch((err: Error) => {
    log('error', 'events.close_failed', { organization_id: organizationId, error: err.message });
    return [];
  });
  await closeGatewaySubscribers(
    env,
    gateways,
    'all' in selector ? { all: true } : { principal_ids: selector.principalIds },
  );
}

/**
 * After a user's revoke-all: closes their sockets in every organization they belong to, and those
 * of the API keys the same statement revoked (revoked at the user's `credentials_revoked_at`).
 */
export async function closeEventSocketsOfRevokedUser(env: Env, db: Database, userId: string): Promise<void> {
  try {
    const result = await db.execute<{ organization_id: string; principal_id: string }>(sql`
      SELECT organization_id, user_id AS principal_id FROM organization_members WHERE user_id = ${userId}
      UNION ALL
      SELECT k.organization_id, k.id FROM api_keys k JOIN users u ON u.id = k.created_by
      WHERE u.id = ${userId} AND k.revoked_at = u.credentials_revoked_at`);
    const byOrganization = new Map<string, string[]>();
    for (const row of result.rows) {
      byOrganization.set(row.organization_id, [...(byOrganization.get(row.organization_id) ?? []), row.principal_id]);
    }
    await Promise.all(
      [...byOrganization].map(([organizationId, principalIds]) =>
        closeLiveSockets(env, db, organizationId, { principalIds }),
      ),
    );
  } catch (err) {
    log('error', 'events.close_failed', { user_id: userId, error: (err as Error).message });
  }
}

/** Hands a subscriber's (already verified) WebSocket upgrade to its organization's hub. */
export function connectToHub(env: Env, grant: EventTicketGrant, afterId: number | null): Promise<Response> {
  const headers = new Headers({
    Upgrade: 'websocket',
    [HUB_HEADERS.principalType]: grant.principalType,
    [HUB_HEADERS.principalId]: grant.principalId,
  });
  if (grant.boardId) headers.set(HUB_HEADERS.boardId, grant.boardId);
  if (afterId !== null) headers.set(HUB_HEADERS.afterId, String(afterId));
  return hub(env, grant.organizationId).fetch(`${HUB_ORIGIN}/connect`, { headers });
}
