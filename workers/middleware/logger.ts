import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { log } from '../lib/log';
import type { AppEnv } from '../types';

const DEFAULT_SLOW_MS = 1000;

export interface LoggerOptions {
  /** Paths never reported as slow (probes that wait on dependencies by design). */
  notSlow?: string[];
}

/** The pattern of the handler that answered (`/api/v1/boards/:id`), null when only middleware ran. */
function handlerRoute(c: Parameters<MiddlewareHandler<AppEnv>>[0]): string | null {
  const last = matchedRoutes(c).at(-1);
  return last && last.method !== 'ALL' ? last.path : null;
}

/**
 * One datapoint per request in Workers Analytics Engine (README: operations queries). Blobs:
 * route, method, status class, rate-limited, organization; doubles: duration, status.
 */
function recordDatapoint(c: Parameters<MiddlewareHandler<AppEnv>>[0], route: string | null, durationMs: number) {
  const status = c.res.status;
  const organization = c.var.audit?.organizationId ?? '';
  try {
    c.env.METRICS?.writeDataPoint({
      indexes: [route ?? c.req.path.slice(0, 96)],
      blobs: [
        route ?? 'unmatched',
        c.req.method,
        `${Math.floor(status / 100)}xx`,
        status === 429 ? 'rate_limited' : '',
        organization,
      ],
      doubles: [durationMs, status],
    });
  } catch {
    // Metrics never fail a request.
  }
}

/** One structured line per request; `http.request.slow` at warn past REQUEST_LOG_SLOW_MS. */
export function logger(options: LoggerOptions = {}): MiddlewareHandler<AppEnv> {
  const notSlow = new Set(options.notSlow ?? []);
  return async function loggerMiddleware(c, next) {
    const started = performance.now();
    await next();
    // In workerd the clock only advances across I/O, so this measures time spent waiting on it.
    const durationMs = Math.round(performance.now() - started);
    const slowMs = c.var.loaded?.ok ? c.var.loaded.settings.REQUEST_LOG_SLOW_MS : DEFAULT_SLOW_MS;
    const slow = durationMs >= slowMs && !notSlow.has(c.req.path);
    const route = handlerRoute(c);
    recordDatapoint(c, route, durationMs);
    log(slow ? 'warn' : 'info', slow ? 'http.request.slow' : 'http.request', {
      method: c.req.method,
      route,
      path: c.req.path,
      status: c.res.status,
      duration_ms: durationMs,
      request_id: c.var.requestId,
    });
  };
}
