import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../types';

const HEADER = 'X-Request-Id';
/** Accept a caller's id only if it is short and plain, so it cannot smuggle anything into logs. */
const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(): MiddlewareHandler<AppEnv> {
  return async function requestIdMiddleware(c, next) {
    const incoming = c.req.header(HEADER);
    const id = incoming && SAFE_ID.test(incoming) ? incoming : crypto.randomUUID();
    c.set('requestId', id);
    await next();
    c.res.headers.set(HEADER, id);
  };
}
