/**
 * The queue consumers: webhook deliveries, and their dead-letter queue. A message that fails is
 * retried with backoff (its attempt and error kept on the payload row); after the queue's
 * max_retries it lands in the dead-letter queue, whose consumer marks the row dead_lettered.
 */
import { loadSettings } from '../config';
import { openDatabase } from '../db/client';
import { isUuid } from '../lib/ids';
import { log } from '../lib/log';
import { shutdownActive } from '../services/emergency-shutdown';
import {
  type DeliveryMessage,
  deadLetter,
  deliverPayload,
  recordFailure,
  retryDelay,
} from '../services/webhook-delivery';

export const DELIVERY_QUEUE = 'mce-webhook-deliveries';
export const DEAD_LETTER_QUEUE = 'mce-webhook-deliveries-dlq';

export async function consumeWebhookDeliveries(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const loaded = loadSettings(env);
  if (!loaded.ok) {
    log('error', 'webhook.delivery_config_invalid', { problems: loaded.problems });
    batch.retryAll({ delaySeconds: 60 });
    return;
  }
  const settings = loaded.settings;
  const db = await openDatabase(settings);
  const deadLetters = batch.queue === DEAD_LETTER_QUEUE;
  const paused = deadLetters ? false : await shutdownActive(db, settings);
  for (const message of batch.messages) {
    const payloadId = (message.body as Partial<DeliveryMessage> | null)?.payload_id;
    if (!isUuid(payloadId)) {
      // Nothing to retry: a malformed message can never succeed.
      log('error', 'webhook.delivery_malformed', { message_id: message.id, queue: batch.queue });
      message.ack();
      continue;
    }
    const requestId = `queue:${message.id}`;
    try {
      if (deadLetters) await deadLetter(env, db, payloadId, requestId);
      else {
        const outcome = await deliverPayload(env, db, settings, payloadId, { requestId, paused });
        log('info', 'webhook.delivery', { payload_id: payloadId, outcome, attempt: message.attempts });
      }
      message.ack();
    } catch (err) {
      const error = (err as Error).message;
      const attempts = await recordFailure(db, payloadId, error).catch(() => message.attempts);
      log('warn', 'webhook.delivery_failed', { payload_id: payloadId, attempt: attempts, error, queue: batch.queue });
      message.retry({ delaySeconds: retryDelay(message.attempts) });
    }
  }
}
