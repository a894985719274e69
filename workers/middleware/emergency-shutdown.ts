/**
 * Emergency shutdown: while it is on, everything under /api answers 503 except platform-admin
 * requests (so an admin can turn it off). Probes are not under /api and keep answering.
 *
 * Two halves around authentication: the gate refuses at once whatever cannot be a platform admin
 * (no credential, API keys, agents, public routes), so a shutdown costs no credential lookups;
 * the check after authentication lets only platform admins through.
 */
import type { MiddlewareHandler } from 'hono';
import { AGENT_TOKEN_PREFIX, API_KEY_PREFIX } from '../auth/authenticate';
import { openDatabase } from '../db/client';
import { AppError } from '../lib/errors';
import { isPublicRoute } from '../routes/registry';
import { shutdownActive } from '../services/emergency-shutdown';
import type { AppEnv } from '../types';

const unavailable = () =>
  new AppError(503, 'emergency_shutdown', 'The service is in emergency shutdown; try again later.', {
    headers: { 'Retry-After': '60' },
  });

export function emergencyShutdownGate(): MiddlewareHandler<AppEnv> {
  return async function emergencyShutdownGateMiddleware(c, next) {
    const settings = c.var.settings;
    // A database that cannot be opened cannot say "on": routes that need it answer for themselves.
    const active = await openDatabase(settings).then(
      (db) => shutdownActive(db, settings),
      () => false,
    );
    if (!active) return next();
    const token = /^Bearer\s+(\S+)/i.exec(c.req.header('Authorization') ?? '')?.[1];
    const cannotBeAdmin =
      !token ||
      token.startsWith(API_KEY_PREFIX) ||
      token.startsWith(AGENT_TOKEN_PREFIX) ||
      c.req.path.startsWith('/api/v1/agent/') ||
      isPublicRoute(c.req.method, c.req.path);
    if (cannotBeAdmin) throw unavailable();
    c.set('shutdown', true);
    await next();
  };
}

export function emergencyShutdownAdminsOnly(): MiddlewareHandler<AppEnv> {
  return async function emergencyShutdownAdminsOnlyMiddleware(c, next) {
    const principal = c.var.principal;
    if (c.var.shutdown && !(principal?.kind === 'user' && principal.platformAdmin)) throw unavailable();
    await next();
  };
}
