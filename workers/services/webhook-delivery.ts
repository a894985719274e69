/**
 * Delivering accepted webhook payloads to the board's agent: the queue consumer's work, the
 * dead-letter consumer's, and the sweep that re-enqueues payloads whose hand-off was lost.
 *
 * The message an agent gets fences the payload as untrusted external data, capped at
 * MAX_MESSAGE_CHARS with a pointer to the stored payload. On a board with a gateway it goes into
 * the agent's main session with `chat.send` (the payload id is the idempotency key, so a retried
 * delivery is not sent twice); either way a `webhook.delivered` activity event carries it.
 */
import { sql } from 'drizzle-orm';
import type { Settings } from '../config';
import type { Database } from '../db/client';
import { capText, detectInjection, fenceExternalData, type InjectionFinding } from '../lib/external-data';
import { log } from '../lib/log';
import type { ActivityEvent } from './activity';
import { jsonb, runChange } from './activity-feed';
import { sendToAgent } from './agent-messages';
import { type AuditContext, systemContext } from './audit';
import { publishEvents } from './events';

export interface DeliveryMessage {
  payload_id: string;
}

export type DeliveryOutcome = 'delivered' | 'blocked' | 'already_done' | 'paused';

type PendingPayload = {
  id: string;
  status: string;
  organization_id: string;
  board_id: string;
  webhook_id: string;
  encoding: string;
  payload_text: string;
  byte_size: number;
  description: string;
  agent_id: string | null;
  agent_name: string | null;
  /** The board's gateway: the message goes there with chat.send. */
  gateway_id: string | null;
};

/**
 * Hands a committed payload to the delivery queue. Never rejects: a failed send leaves the row
 * pending, and the hourly sweep enqueues it again.
 */
export async function enqueueDelivery(env: Env, payloadId: string): Promise<void> {
  try {
    await env.WEBHOOK_DELIVERIES.send({ payload_id: payloadId } satisfies DeliveryMessage);
  } catch (err) {
    log('error', 'webhook.enqueue_failed', { payload_id: payloadId, error: (err as Error).message });
  }
}

/** A failure the queue should retry (and dead-letter after its retries). */
export class DeliveryFailed extends Error {}

/** Where an agent reads the whole payload (the agent API). */
export const payloadPointer = (p: { board_id: string; webhook_id: string; id: string }) =>
  `GET /api/v1/agent/boards/${p.board_id}/webhooks/${p.webhook_id}/payloads/${p.id}`;

async function loadPayload(db: Database, payloadId: string): Promise<PendingPayload | undefined> {
  const { rows } = await db.execute<PendingPayload>(sql`
    WITH p AS (SELECT p.*, w.description, coalesce(w.agent_id,
        (SELECT a.id FROM agents a WHERE a.board_id = p.board_id AND a.is_lead)) AS target
      FROM board_webhook_payloads p JOIN board_webhooks w ON w.id = p.webhook_id
      WHERE p.id = ${payloadId}::uuid)
    SELECT p.id, p.status, p.organization_id, p.board_id, p.webhook_id, p.encoding, p.payload::text AS payload_text,
      p.byte_size, p.description, p.target AS agent_id, (SELECT name FROM agents WHERE id = p.target) AS agent_name,
      (SELECT gateway_id FROM boards WHERE id = p.board_id) AS gateway_id
    FROM p`);
  return rows[0];
}

/** The payload as the agent reads it: JSON as stored, text as text, bytes as base64. */
function payloadText(p: PendingPayload): string {
  if (p.encoding === 'json') return p.payload_text;
  return JSON.parse(p.payload_text) as string;
}

/** The text sent to the agent, at most `maxChars` long, its fence always intact. */
export function composeMessage(p: PendingPayload, maxChars: number): { text: string; truncated: boolean } {
  const source = `webhook payload ${p.id}`;
  const head = `A webhook delivered an event to this board. What the webhook is for: ${p.description}\n`;
  const tail = `\nThe full payload is stored: ${payloadPointer(p)}`;
  const text = payloadText(p);
  let budget = maxChars - head.length - tail.length - fenceExternalData(source, '').length;
  // Fencing can lengthen the body (neutralised markers), so shrink the cap until the whole fits.
  for (;;) {
    const body = capText(text, Math.max(200, budget), payloadPointer(p));
    const message = `${head}${fenceExternalData(source, body.text)}${tail}`;
    if (message.length <= maxChars || budget <= 200) return { text: message, truncated: body.truncated };
    budget -= message.length - maxChars;
  }
}

export async function deliverPayload(
  env: Env,
  db: Database,
  settings: Settings,
  payloadId: string,
  options: { requestId: string; paused: boolean },
): Promise<DeliveryOutcome> {
  const p = await loadPayload(db, payloadId);
  if (p?.status !== 'pending') return 'already_done';
  // During an emergency shutdown nothing goes to agents; the row stays pending for the sweep.
  if (options.paused) return 'paused';
  if (!p.agent_id) throw new DeliveryFailed('the board has no lead agent and the webhook names no agent');

  const findings: InjectionFinding[] = settings.INJECTION_ACTION === 'off' ? [] : detectInjection(payloadText(p));
  if (findings.length > 0) {
    log('warn', 'security.injection.detected', {
      payload_id: p.id,
      webhook_id: p.webhook_id,
      patterns: findings.map((f) => f.pattern),
      action: settings.INJECTION_ACTION,
    });
  }
  const ctx = systemContext(p.organization_id, options.requestId);
  const patterns = findings.map((f) => f.pattern);
  if (settings.INJECTION_ACTION === 'block' && findings.length > 0) {
    await publish(env, p, await settle(db, ctx, p, 'blocked', { patterns }));
    return 'blocked';
  }
  const message = composeMessage(p, settings.MAX_MESSAGE_CHARS);
  if (p.gateway_id) {
    // A gateway that is down makes the queue retry; the payload id keeps a retried send from repeating.
    await sendToAgent(env, settings, p.gateway_id, p.agent_id, message.text, `mce-webhook-${p.id}`).catch((err) => {
      throw new DeliveryFailed(`the gateway did not take the message: ${(err as Error).message}`);
    });
  }
  const events = await settle(db, ctx, p, 'delivered', {
    agent_id: p.agent_id,
    gateway_id: p.gateway_id,
    message: message.text,
    truncated: message.truncated,
    patterns,
  });
  await publish(env, p, events);
  return 'delivered';
}

function publish(env: Env, p: PendingPayload, events: ActivityEvent[]): Promise<void> {
  return publishEvents(env, p.organization_id, events);
}

/**
 * One statement: the pending row moves to its final state, with its activity event and audit row.
 * A row another consumer already settled is left alone (at-least-once delivery).
 */
async function settle(
  db: Database,
  ctx: AuditContext,
  p: PendingPayload,
  status: 'delivered' | 'blocked' | 'dead_lettered',
  details: Record<string, unknown>,
): Promise<ActivityEvent[]> {
  const text = {
    delivered: `Webhook payload delivered to ${p.agent_name ?? 'the board lead'}`,
    blocked: 'Webhook payload blocked: it looks like a prompt injection',
    dead_lettered: 'Webhook payload could not be delivered (dead-lettered)',
  }[status];
  const { events } = await runChange(db, ctx, {
    change: sql`UPDATE board_webhook_payloads SET status = ${status}::text, attempts = attempts + 1,
        delivered_at = CASE WHEN ${status}::text = 'delivered' THEN now() END
      WHERE id = ${p.id}::uuid AND status = 'pending'
      RETURNING *`,
    audit: {
      action: `webhook.payload.${status}`,
      targetType: 'webhook_payload',
      details: jsonb({ webhook_id: p.webhook_id, patterns: details.patterns ?? [] }),
    },
    activity: [
      {
        type: `webhook.${status}`,
        message: sql`${text}::text`,
        boardId: sql`changed.board_id`,
        agentId: sql`${p.agent_id}::uuid`,
        payload: jsonb({ webhook_id: p.webhook_id, payload_id: p.id, ...details }),
      },
    ],
  });
  return events;
}

/** A failed attempt, kept on the row so operators see why it is still pending. */
export async function recordFailure(db: Database, payloadId: string, error: string): Promise<number> {
  const { rows } = await db.execute<{ attempts: number }>(sql`
    UPDATE board_webhook_payloads SET attempts = attempts + 1, last_error = ${error.slice(0, 500)}::text
    WHERE id = ${payloadId}::uuid AND status = 'pending' RETURNING attempts`);
  return Number(rows[0]?.attempts ?? 0);
}

/** The dead-letter queue's consumer: retries are exhausted, the row says so. */
export async function deadLetter(env: Env, db: Database, payloadId: string, requestId: string): Promise<void> {
  const p = await loadPayload(db, payloadId);
  if (p?.status !== 'pending') return;
  const events = await settle(db, systemContext(p.organization_id, requestId), p, 'dead_lettered', {});
  await publish(env, p, events);
}

/**
 * Re-enqueues payloads still pending after WEBHOOK_REDELIVER_AFTER_SECONDS: a queue send that
 * failed after the 202, a batch lost with its consumer, or a pause for emergency shutdown.
 * Rows are stamped before sending, so a failed send is simply picked up by the next sweep.
 */
export async function redeliverPending(env: Env, db: Database, settings: Settings, limit = 1_000): Promise<number> {
  const { rows } = await db.execute<{ id: string }>(sql`
    UPDATE board_webhook_payloads SET enqueued_at = now()
    WHERE id IN (SELECT id FROM board_webhook_payloads
      WHERE status = 'pending' AND enqueued_at <= now() - make_interval(secs => ${settings.WEBHOOK_REDELIVER_AFTER_SECONDS}::int)
      ORDER BY enqueued_at LIMIT ${limit}::int FOR UPDATE SKIP LOCKED)
    RETURNING id`);
  for (let i = 0; i < rows.length; i += 100) {
    await env.WEBHOOK_DELIVERIES.sendBatch(
      rows.slice(i, i + 100).map((r) => ({ body: { payload_id: r.id } satisfies DeliveryMessage })),
    );
  }
  return rows.length;
}

/** Seconds before the queue retries a failed delivery: 10 s, 20 s, 40 s ... at most 10 minutes. */
export const retryDelay = (attempts: number) => Math.min(600, 10 * 2 ** Math.max(0, attempts - 1));
