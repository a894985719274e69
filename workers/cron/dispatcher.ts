/**
 * Cron triggers, by schedule; each job records a `job_runs` row. Daily: backup export (continued
 * by the hourly run when it needs more than one invocation), verification, retention. Hourly:
 * cleanup, which also re-enqueues webhook payloads still pending.
 */
import { loadSettings } from '../config';
import { openDatabase } from '../db/client';
import { log } from '../lib/log';
import { runBackup } from '../services/backups';
import { runJob } from '../services/job-runs';
import { runCleanup } from './cleanup';

export const DAILY = '0 3 * * *';
export const HOURLY = '0 * * * *';

export async function dispatchScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const loaded = loadSettings(env);
  if (!loaded.ok) throw new Error(`settings invalid: ${loaded.problems.map((p) => p.setting).join(', ')}`);
  const settings = loaded.settings;
  const db = await openDatabase(settings);
  switch (controller.cron) {
    case DAILY:
      await runJob(db, 'backup', () => runBackup(env, db, settings, { start: true }));
      return;
    case HOURLY:
      await runJob(db, 'cleanup', () => runCleanup(env, db, settings));
      await runJob(db, 'backup_continue', () => runBackup(env, db, settings, { start: false }));
      return;
    default:
      log('warn', 'cron.unknown_schedule', { cron: controller.cron });
  }
}
