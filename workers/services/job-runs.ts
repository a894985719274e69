/** Cron job bookkeeping: one `job_runs` row per run and one structured `cron.<job>` log line. */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { isoText, parseJson } from '../db/rows';
import { log } from '../lib/log';

export type JobCounts = Record<string, number | string | boolean | null>;

export async function runJob(db: Database, job: string, work: () => Promise<JobCounts>): Promise<JobCounts> {
  const { rows } = await db.execute<{ id: number }>(sql`INSERT INTO job_runs (job) VALUES (${job}) RETURNING id`);
  const id = rows[0]?.id;
  const started = Date.now();
  try {
    const counts = await work();
    await db.execute(sql`UPDATE job_runs SET status = 'succeeded', finished_at = now(), counts = ${JSON.stringify(counts)}::jsonb
      WHERE id = ${id}`);
    log('info', `cron.${job}`, { status: 'succeeded', duration_ms: Date.now() - started, ...counts });
    return counts;
  } catch (err) {
    const error = (err as Error).message.slice(0, 1_000);
    await db
      .execute(sql`UPDATE job_runs SET status = 'failed', finished_at = now(), error = ${error} WHERE id = ${id}`)
      .catch(() => {});
    log('error', `cron.${job}`, { status: 'failed', duration_ms: Date.now() - started, error });
    throw err;
  }
}

export type LastRun = {
  job: string;
  status: string;
  started_at: string;
  finished_at: string | null;
  counts: Record<string, unknown>;
  error: string | null;
};

/** The newest run of every job. */
export async function lastRuns(db: Database): Promise<LastRun[]> {
  const { rows } = await db.execute<LastRun>(sql`
    SELECT DISTINCT ON (job) job, status, ${sql.raw(isoText('started_at'))} AS started_at,
      ${sql.raw(isoText('finished_at'))} AS finished_at, counts, error
    FROM job_runs ORDER BY job, started_at DESC, id DESC`);
  return rows.map((r) => ({ ...r, counts: parseJson<Record<string, unknown>>(r.counts) }));
}
