/**
 * Ops health for platform admins: the state the runbook watches, with an overall status.
 * Thresholds: no verified backup in 25 h, a failed verification, or a database slower than 1 s
 * → degraded; a backup whose size moved more than 50% from the previous one, dead-lettered
 * deliveries in the last day, more than 1,000 pending deliveries, or a gateway session that is not
 * connected → warning.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { sessionStatus } from './gateway-sessions';
import { gatewayIds } from './gateways';
import { type LastRun, lastRuns } from './job-runs';

export type HealthStatus = 'ok' | 'warning' | 'degraded';

export interface OpsHealth {
  status: HealthStatus;
  problems: { level: 'warning' | 'degraded'; message: string }[];
  database: { latency_ms: number };
  revocations: { api_keys_revoked: number; agents_revoked: number; users_revoked: number };
  deliveries: {
    pending: number;
    dead_lettered: number;
    dead_lettered_last_day: number;
    oldest_pending_age_s: number | null;
  };
  backups: {
    last_id: string | null;
    last_completed_at: string | null;
    last_age_hours: number | null;
    last_verification: string | null;
    last_verified_id: string | null;
    last_verified_age_hours: number | null;
    size_change_pct: number | null;
  };
  jobs: LastRun[];
  /** Gateway sessions connected right now, of `gateways_total` (null above GATEWAY_STATUS_CAP gateways). */
  gateways_connected: number | null;
  gateways_total: number;
  /** Counted by the event hubs in a later issue; not known here yet. */
  event_subscribers: number | null;
  /** 429s are counted in Workers Analytics Engine (see the README's operations queries). */
  rate_limited_last_hour: number | null;
}

/** Above this many gateways, asking every session for its status is too much for one request. */
const GATEWAY_STATUS_CAP = 200;

async function gatewaySessions(env: Env, db: Database): Promise<{ total: number; connected: number | null }> {
  const ids = await gatewayIds(db, null);
  if (ids.length > GATEWAY_STATUS_CAP) return { total: ids.length, connected: null };
  const states = await Promise.all(ids.map((id) => sessionStatus(env, id).catch(() => null)));
  return { total: ids.length, connected: states.filter((s) => s?.connected).length };
}

export async function opsHealth(env: Env, db: Database): Promise<OpsHealth> {
  const started = Date.now();
  await db.execute(sql`SELECT 1`);
  const latency = Date.now() - started;
  const { rows } = await db.execute<Record<string, number | string | null>>(sql`
    WITH done AS (SELECT id, completed_at, total_bytes, verification, created_at FROM backups WHERE status = 'complete')
    SELECT
      (SELECT count(*)::int FROM api_keys WHERE revoked_at IS NOT NULL) AS api_keys_revoked,
      (SELECT count(*)::int FROM agents WHERE token_revoked_at IS NOT NULL) AS agents_revoked,
      (SELECT count(*)::int FROM users WHERE credentials_revoked_at IS NOT NULL) AS users_revoked,
      (SELECT count(*)::int FROM board_webhook_payloads WHERE status = 'pending') AS pending,
      (SELECT extract(epoch FROM now() - min(created_at))::float8 FROM board_webhook_payloads WHERE status = 'pending') AS oldest_pending,
      (SELECT count(*)::int FROM board_webhook_payloads WHERE status = 'dead_lettered') AS dead_lettered,
      (SELECT count(*)::int FROM board_webhook_payloads WHERE status = 'dead_lettered'
         AND created_at > now() - interval '1 day') AS dead_lettered_day,
      (SELECT id FROM done ORDER BY created_at DESC LIMIT 1) AS last_id,
      (SELECT to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') FROM done ORDER BY created_at DESC LIMIT 1) AS last_completed_at,
      (SELECT extract(epoch FROM now() - completed_at)::float8 / 3600 FROM done ORDER BY created_at DESC LIMIT 1) AS last_age_h,
      (SELECT verification FROM done ORDER BY created_at DESC LIMIT 1) AS last_verification,
      (SELECT id FROM done WHERE verification = 'passed' ORDER BY created_at DESC LIMIT 1) AS verified_id,
      (SELECT extract(epoch FROM now() - completed_at)::float8 / 3600 FROM done WHERE verification = 'passed'
         ORDER BY created_at DESC LIMIT 1) AS verified_age_h,
      (SELECT total_bytes::float8 FROM done ORDER BY created_at DESC LIMIT 1) AS last_bytes,
      (SELECT total_bytes::float8 FROM done ORDER BY created_at DESC OFFSET 1 LIMIT 1) AS previous_bytes`);
  const r = rows[0] ?? {};
  const gateways = await gatewaySessions(env, db);
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const lastBytes = num(r.last_bytes);
  const previousBytes = num(r.previous_bytes);
  const sizeChange =
    lastBytes !== null && previousBytes ? Math.round(((lastBytes - previousBytes) / previousBytes) * 1000) / 10 : null;
  const health: OpsHealth = {
    status: 'ok',
    problems: [],
    database: { latency_ms: latency },
    revocations: {
      api_keys_revoked: Number(r.api_keys_revoked ?? 0),
      agents_revoked: Number(r.agents_revoked ?? 0),
      users_revoked: Number(r.users_revoked ?? 0),
    },
    deliveries: {
      pending: Number(r.pending ?? 0),
      dead_lettered: Number(r.dead_lettered ?? 0),
      dead_lettered_last_day: Number(r.dead_lettered_day ?? 0),
      oldest_pending_age_s: num(r.oldest_pending) === null ? null : Math.round(Number(r.oldest_pending)),
    },
    backups: {
      last_id: (r.last_id as string | null) ?? null,
      last_completed_at: (r.last_completed_at as string | null) ?? null,
      last_age_hours: num(r.last_age_h),
      last_verification: (r.last_verification as string | null) ?? null,
      last_verified_id: (r.verified_id as string | null) ?? null,
      last_verified_age_hours: num(r.verified_age_h),
      size_change_pct: sizeChange,
    },
    jobs: await lastRuns(db),
    gateways_connected: gateways.connected,
    gateways_total: gateways.total,
    event_subscribers: null,
    rate_limited_last_hour: null,
  };
  const degrade = (message: string) => health.problems.push({ level: 'degraded', message });
  const warn = (message: string) => health.problems.push({ level: 'warning', message });
  if (health.backups.last_verified_age_hours === null || health.backups.last_verified_age_hours > 25)
    degrade('No verified backup in the last 25 hours.');
  if (health.backups.last_verification === 'failed') degrade(`Backup ${health.backups.last_id} failed verification.`);
  if (latency > 1_000) degrade(`The database answered in ${latency} ms.`);
  if (sizeChange !== null && Math.abs(sizeChange) > 50) warn(`The last backup's size changed by ${sizeChange}%.`);
  if (health.deliveries.dead_lettered_last_day > 0)
    warn(`${health.deliveries.dead_lettered_last_day} webhook deliveries were dead-lettered in the last day.`);
  if (gateways.connected !== null && gateways.connected < gateways.total)
    warn(`${gateways.total - gateways.connected} of ${gateways.total} gateway sessions are not connected.`);
  if (health.deliveries.pending > 1_000) warn(`${health.deliveries.pending} webhook deliveries are pending.`);
  for (const job of health.jobs) if (job.status === 'failed') warn(`The last ${job.job} run failed: ${job.error}`);
  health.status = health.problems.some((p) => p.level === 'degraded')
    ? 'degraded'
    : health.problems.length
      ? 'warning'
      : 'ok';
  return health;
}
