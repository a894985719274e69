import type { MiddlewareHandler } from 'hono';
import { cors as honoCors } from 'hono/cors';
import type { AppEnv } from '../types';

/** CORS only for origins listed in CORS_ORIGINS; every other origin gets no CORS headers at all. */
export function cors(): MiddlewareHandler<AppEnv> {
  const handler = honoCors({
    origin: (origin, c) => {
      const loaded = (c.var as { loaded?: AppEnv['Variables']['loaded'] }).loaded;
      return loaded?.ok && loaded.settings.CORS_ORIGINS.includes(origin) ? origin : null;
    },
    allowMethods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id', 'Idempotency-Key'],
    exposeHeaders: ['X-Request-Id', 'Retry-After'],
    maxAge: 600,
  });
  return async function corsMiddleware(c, next) {
    return handler(c, next);
  };
}
