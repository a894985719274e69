/** Cron triggers, by schedule. The hourly sweep re-enqueues webhook payloads still pending. */
import { loadSettings } from '../config';
import { openDatabase } from '../db/client';
import { log } from '../lib/log';
import { redeliverPending } from '../services/webhook-delivery';

export const HOURLY = '0 * * * *';

export async function dispatchScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const loaded = loadSettings(env);
  if (!loaded.ok) throw new Error(`settings invalid: ${loaded.problems.map((p) => p.setting).join(', ')}`);
  const db = await openDatabase(loaded.settings);
  switch (controller.cron) {
    case HOURLY: {
      const requeued = await redeliverPending(env, db, loaded.settings);
      log('info', 'cron.webhook_redelivery', { requeued });
      return;
    }
    default:
      log('warn', 'cron.unknown_schedule', { cron: controller.cron });
  }
}
