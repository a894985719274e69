/**
 * The deployment-wide emergency switch. The flag lives in Postgres; each isolate re-reads it at
 * most every CACHE_MS, so turning it on reaches every isolate within a few seconds.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { isoText } from '../db/rows';
import { log } from '../lib/log';
import { jsonb } from './activity-feed';
import type { AuditContext } from './audit';
import { auditRowsFrom } from './audit';

const FLAG = 'emergency_shutdown';
export const CACHE_MS = 2_000;
const UPDATED_AT = sql.raw(`${isoText('updated_at')} AS updated_at`);

export interface ShutdownState {
  enabled: boolean;
  reason: string | null;
  updatedBy: string | null;
  updatedAt: string | null;
}

const OFF: ShutdownState = { enabled: false, reason: null, updatedBy: null, updatedAt: null };
const cache = new WeakMap<object, { state: ShutdownState; readAt: number }>();

export async function readShutdown(db: Database): Promise<ShutdownState> {
  const { rows } = await db.execute<{
    enabled: boolean;
    reason: string | null;
    updated_by: string | null;
    updated_at: string;
  }>(sql`SELECT enabled, reason, updated_by, ${UPDATED_AT} FROM platform_flags WHERE name = ${FLAG}`);
  const row = rows[0];
  return row
    ? { enabled: row.enabled, reason: row.reason, updatedBy: row.updated_by, updatedAt: String(row.updated_at) }
    : OFF;
}

/**
 * Whether the switch is on, cached per isolate and `scope` (the parsed settings: one database).
 * If the database cannot be read, the last known state stands (off when none is known).
 */
export async function shutdownActive(db: Database, scope: object): Promise<boolean> {
  const cached = cache.get(scope);
  if (cached && Date.now() - cached.readAt < CACHE_MS) return cached.state.enabled;
  try {
    const state = await readShutdown(db);
    cache.set(scope, { state, readAt: Date.now() });
    return state.enabled;
  } catch (err) {
    log('error', 'emergency_shutdown.read_failed', { error: (err as Error).message });
    return cached?.state.enabled ?? false;
  }
}

/** Turns the switch on or off with its audit row, in one statement; this isolate sees it at once. */
export async function setShutdown(
  db: Database,
  ctx: AuditContext,
  scope: object,
  input: { enabled: boolean; reason: string | null; updatedBy: string },
): Promise<ShutdownState> {
  const { rows } = await db.execute<{
    enabled: boolean;
    reason: string | null;
    updated_by: string;
    updated_at: string;
  }>(sql`
    WITH changed AS (
      INSERT INTO platform_flags (name, enabled, reason, updated_by, updated_at)
      VALUES (${FLAG}, ${input.enabled}::boolean, ${input.reason}::text, ${input.updatedBy}::text, now())
      ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, reason = excluded.reason,
        updated_by = excluded.updated_by, updated_at = excluded.updated_at
      RETURNING name AS id, enabled, reason, updated_by, updated_at),
    audit AS (${auditRowsFrom(ctx, {
      action: input.enabled ? 'platform.emergency_shutdown.on' : 'platform.emergency_shutdown.off',
      targetType: 'platform',
      organizationId: sql`NULL::uuid`,
      targetId: sql`changed.id`,
      details: jsonb({ reason: input.reason }),
      from: sql`changed`,
    })})
    SELECT enabled, reason, updated_by, ${UPDATED_AT} FROM changed`);
  const row = rows[0];
  if (!row) throw new Error('emergency shutdown flag not written');
  const state = {
    enabled: row.enabled,
    reason: row.reason,
    updatedBy: row.updated_by,
    updatedAt: String(row.updated_at),
  };
  cache.set(scope, { state, readAt: Date.now() });
  return state;
}
