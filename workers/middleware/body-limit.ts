import type { MiddlewareHandler } from 'hono';
import { bodyLimit as honoBodyLimit } from 'hono/body-limit';
import { AppError } from '../lib/errors';
import { publicRoute } from '../routes/registry';
import type { AppEnv } from '../types';

const JSON_TYPE = /^application\/([\w.-]+\+)?json$/i;
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * JSON API bodies: JSON only (415 otherwise) and at most JSON_BODY_LIMIT_BYTES (413), counted on
 * the bytes actually streamed, so a lying Content-Length or a chunked body cannot get past it.
 */
export function jsonBodyLimit(): MiddlewareHandler<AppEnv> {
  const limiters = new Map<number, MiddlewareHandler>();
  const limiterFor = (maxSize: number) => {
    let limiter = limiters.get(maxSize);
    if (!limiter) {
      limiter = honoBodyLimit({
        maxSize,
        onError: () => {
          throw new AppError(413, 'payload_too_large', `The request body exceeds ${maxSize} bytes.`, {
            details: { limit_bytes: maxSize },
          });
        },
      });
      limiters.set(maxSize, limiter);
    }
    return limiter;
  };
  return async function jsonBodyLimitMiddleware(c, next) {
    if (!WITH_BODY.has(c.req.method) || c.req.raw.body === null) return next();
    if (publicRoute(c.req.method, c.req.path)?.rawBody) return next();
    const mediaType = (c.req.header('content-type') ?? '').split(';')[0]?.trim() ?? '';
    if (!JSON_TYPE.test(mediaType)) {
      throw new AppError(415, 'unsupported_media_type', 'Send the request body as application/json.', {
        details: { content_type: mediaType || null },
      });
    }
    return limiterFor(c.var.settings.JSON_BODY_LIMIT_BYTES)(c, next);
  };
}
