import type { MiddlewareHandler } from 'hono';
import { securityHeaderValues } from '../lib/security-headers';
import type { AppEnv } from '../types';

/** Sets the security headers on every response the Worker produces, errors included. */
export function securityHeaders(): MiddlewareHandler<AppEnv> {
  return async function securityHeadersMiddleware(c, next) {
    await next();
    const settings = c.var.loaded?.ok ? c.var.loaded.settings : undefined;
    for (const [name, value] of securityHeaderValues(settings)) c.res.headers.set(name, value);
  };
}
