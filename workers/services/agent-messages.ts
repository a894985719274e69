/**
 * Messages from Mission Control into an agent's main session on its board's gateway (`chat.send`):
 * webhook deliveries and approval outcomes. The idempotency key makes a repeated send a no-op on
 * the gateway.
 */
import { sql } from 'drizzle-orm';
import type { Settings } from '../config';
import type { Database } from '../db/client';
import { log } from '../lib/log';
import type { ActivityEvent } from './activity';
import { mainSessionKey } from './agent-provisioning';
import { relay } from './gateway-sessions';

/** Sends or throws (the gateway is down, or refused it): the caller decides whether to retry. */
export async function sendToAgent(
  env: Env,
  settings: Settings,
  gatewayId: string,
  agentId: string,
  message: string,
  idempotencyKey: string,
): Promise<void> {
  await relay(env, gatewayId, {
    method: 'chat.send',
    params: { sessionKey: mainSessionKey(agentId), message, deliver: false, idempotencyKey },
    timeout_ms: settings.GATEWAY_RPC_TIMEOUT_MS,
    idempotent: false,
  });
}

/**
 * Tells the board lead an approval was decided, when its board has a gateway. Best effort: the
 * `approval.resolved` activity event addressed to the lead stays the record the agent can poll.
 */
export async function notifyApprovalResolved(
  env: Env,
  db: Database,
  settings: Settings,
  events: ActivityEvent[],
): Promise<void> {
  const event = events.find((e) => e.type === 'approval.resolved' && e.agent_id && e.board_id);
  if (!event?.agent_id || !event.board_id) return;
  try {
    const { rows } = await db.execute<{ gateway_id: string | null }>(
      sql`SELECT gateway_id FROM boards WHERE id = ${event.board_id}::uuid`,
    );
    const gatewayId = rows[0]?.gateway_id;
    if (!gatewayId) return;
    const p = event.payload as { approval_id?: string; status?: string; action_type?: string; note?: string | null };
    const message =
      `Mission Control: your approval request "${p.action_type}" (${p.approval_id}) was ${p.status}.` +
      (p.note ? ` Note from the reviewer: ${p.note}` : '') +
      ' Read it with GET /api/v1/agent/approvals and carry on accordingly.';
    await sendToAgent(env, settings, gatewayId, event.agent_id, message, `mce-approval-${p.approval_id}`);
  } catch (err) {
    log('warn', 'approval.notify_failed', { event_id: event.id, error: (err as Error).message });
  }
}
