/** Picks the rate-limit backend named by RATE_LIMIT_BACKEND, once per isolate. */
import type { Settings } from '../../config';
import type { RateLimiter } from '../../lib/rate-limiter';
import { DurableObjectRateLimiter } from './durable-object-limiter';
import { UpstashRateLimiter } from './upstash-limiter';

const limiters = new WeakMap<object, RateLimiter>();

export function rateLimiterFor(env: Env, settings: Settings): RateLimiter {
  let limiter = limiters.get(env);
  if (!limiter) {
    limiter =
      settings.RATE_LIMIT_BACKEND === 'upstash'
        ? new UpstashRateLimiter({
            // Both are required by the settings schema when the backend is upstash.
            url: settings.UPSTASH_REDIS_REST_URL ?? '',
            token: settings.UPSTASH_REDIS_REST_TOKEN ?? '',
            timeoutMs: settings.UPSTASH_TIMEOUT_MS,
          })
        : new DurableObjectRateLimiter(env.RATE_LIMITER);
    limiters.set(env, limiter);
  }
  return limiter;
}
