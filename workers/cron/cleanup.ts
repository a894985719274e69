/**
 * The hourly cleanup: expired and aged-out rows deleted in bounded batches, and webhook payloads
 * still pending re-enqueued. Batches lock with SKIP LOCKED, so two runs at once share the work
 * instead of colliding; every rule is a plain condition, so a second run finds nothing left.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Settings } from '../config';
import type { Database } from '../db/client';
import { redeliverPending } from '../services/webhook-delivery';

interface Rule {
  name: string;
  table: string;
  where: (s: Settings) => SQL;
}

const days = (n: number) => sql`now() - make_interval(days => ${n}::int)`;

/** What each rule removes; the boundaries are strict (a row exactly at the limit stays). */
export const CLEANUP_RULES: readonly Rule[] = [
  { name: 'event_tickets', table: 'event_tickets', where: () => sql`expires_at < now()` },
  {
    name: 'invites',
    table: 'invites',
    where: (s) =>
      sql`accepted_at IS NULL AND (expires_at < ${days(s.REVOCATION_RETENTION_DAYS)} OR revoked_at < ${days(s.REVOCATION_RETENTION_DAYS)})`,
  },
  {
    name: 'api_keys',
    table: 'api_keys',
    where: (s) =>
      sql`(revoked_at < ${days(s.REVOCATION_RETENTION_DAYS)} OR expires_at < ${days(s.REVOCATION_RETENTION_DAYS)})`,
  },
  {
    name: 'webhook_payloads',
    table: 'board_webhook_payloads',
    // Pending payloads are never dropped: they are still owed to an agent.
    where: (s) => sql`status <> 'pending' AND created_at < ${days(s.WEBHOOK_RETENTION_DAYS)}`,
  },
  { name: 'activity', table: 'activity_events', where: (s) => sql`created_at < ${days(s.ACTIVITY_RETENTION_DAYS)}` },
  { name: 'audit', table: 'audit_logs', where: (s) => sql`created_at < ${days(s.AUDIT_RETENTION_DAYS)}` },
  {
    name: 'job_runs',
    table: 'job_runs',
    where: (s) => sql`started_at < ${days(s.JOB_RUN_RETENTION_DAYS)} AND status <> 'running'`,
  },
];

const BATCH = 1_000;
/** Stop starting new batches after this long; the next run continues. */
const BUDGET_MS = 20_000;

async function deleteInBatches(db: Database, table: string, where: SQL, deadline: number): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await db.execute<{ n: number }>(sql`
      WITH doomed AS (SELECT ctid FROM ${sql.identifier(table)} WHERE ${where} LIMIT ${BATCH} FOR UPDATE SKIP LOCKED),
      gone AS (DELETE FROM ${sql.identifier(table)} WHERE ctid IN (SELECT ctid FROM doomed) RETURNING 1)
      SELECT count(*)::int AS n FROM gone`);
    const n = Number(rows[0]?.n ?? 0);
    total += n;
    if (n < BATCH || Date.now() > deadline) return total;
  }
}

export async function runCleanup(env: Env, db: Database, settings: Settings): Promise<Record<string, number>> {
  const deadline = Date.now() + BUDGET_MS;
  const counts: Record<string, number> = {};
  for (const rule of CLEANUP_RULES)
    counts[rule.name] = await deleteInBatches(db, rule.table, rule.where(settings), deadline);
  counts.webhooks_requeued = await redeliverPending(env, db, settings);
  return counts;
}
