/**
 * Cron triggers, by schedule; each job records a `job_runs` row. Daily: backup export (continued
 * by the hourly run when it needs more than one invocation), verification, retention. Hourly:
 * cleanup, which also re-enqueues webhook payloads still pending.
 */
import { sql } from 'drizzle-orm';
import type { Settings } from '../config';
import { loadSettings } from '../config';
import { type Database, openDatabase } from '../db/client';
import { log } from '../lib/log';
import { applyRetention, verifyBackup } from '../services/backups';
import { type JobCounts, runJob } from '../services/job-runs';
import { exportSlice, startBackup } from './backup-export';
import { runCleanup } from './cleanup';

export const DAILY = '0 3 * * *';
export const HOURLY = '0 * * * *';

/** Starts (or continues) a backup; once complete, verifies it and applies retention. */
export async function backupJob(
  env: Env,
  db: Database,
  settings: Settings,
  options: { start: boolean },
): Promise<JobCounts> {
  const running = await db.execute<{ id: string }>(sql`SELECT id FROM backups WHERE status = 'running' LIMIT 1`);
  const id = running.rows[0]?.id ?? (options.start ? await startBackup(db, settings) : undefined);
  if (!id) return { backup: 'none' };
  const outcome = await exportSlice(env, db, settings, id);
  if (outcome !== 'complete') return { backup_id: id, outcome };
  const verified = await verifyBackup(env, db, id);
  const removed = await applyRetention(env, db, settings);
  return { backup_id: id, outcome, verification: verified.verification, rows: verified.total_rows, removed };
}

export async function dispatchScheduled(controller: ScheduledController, env: Env): Promise<void> {
  const loaded = loadSettings(env);
  if (!loaded.ok) throw new Error(`settings invalid: ${loaded.problems.map((p) => p.setting).join(', ')}`);
  const settings = loaded.settings;
  const db = await openDatabase(settings);
  switch (controller.cron) {
    case DAILY:
      await runJob(db, 'backup', () => backupJob(env, db, settings, { start: true }));
      return;
    case HOURLY:
      await runJob(db, 'cleanup', () => runCleanup(env, db, settings));
      await runJob(db, 'backup_continue', () => backupJob(env, db, settings, { start: false }));
      return;
    default:
      log('warn', 'cron.unknown_schedule', { cron: controller.cron });
  }
}
