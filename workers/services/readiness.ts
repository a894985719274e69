/** Readiness: is every dependency this Worker needs usable right now? */
import type { LoadedSettings } from '../config';
import { isDatabaseUnreachable, MIGRATE_COMMAND, schemaState, sqlFor } from '../db/client';
import { log } from '../lib/log';

export interface Check {
  ok: boolean;
  latency_ms?: number;
  error?: string;
  [key: string]: unknown;
}

export interface Readiness {
  ok: boolean;
  failed: string[];
  checks: Record<string, Check>;
}

/** A short public reason; the driver's full message (hosts, ports) goes to the log only. */
function describe(err: unknown, timedOut: boolean): string {
  log('warn', 'readyz.db_failed', { timed_out: timedOut, error: err instanceof Error ? err.message : String(err) });
  if (timedOut) return 'timed out';
  if (isDatabaseUnreachable(err)) return 'unreachable';
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? `query failed (SQLSTATE ${code})` : 'query failed';
}

export async function checkReadiness(loaded: LoadedSettings): Promise<Readiness> {
  const checks: Record<string, Check> = {};
  if (!loaded.ok) {
    checks.config = { ok: false, error: `invalid settings: ${loaded.problems.map((p) => p.setting).join(', ')}` };
  } else {
    const { settings } = loaded;
    const timeout = AbortSignal.timeout(settings.READYZ_TIMEOUT_MS);
    const started = performance.now();
    try {
      // One round trip answers both: the database is up, and its schema is current.
      const state = await schemaState(sqlFor(settings), timeout);
      checks.db = { ok: true, latency_ms: Math.round(performance.now() - started) };
      checks.schema = state.ok
        ? { ok: true, migration: state.expected_tag }
        : {
            ok: false,
            error: 'schema is behind this release',
            expected_migration: state.expected_tag,
            fix: MIGRATE_COMMAND,
          };
    } catch (err) {
      checks.db = {
        ok: false,
        latency_ms: Math.round(performance.now() - started),
        error: describe(err, timeout.aborted),
      };
    }
  }
  const failed = Object.entries(checks)
    .filter(([, check]) => !check.ok)
    .map(([name]) => name);
  return { ok: failed.length === 0, failed, checks };
}
