/**
 * The one rate-limiting interface every limit goes through, and the 429 it turns into. Backends
 * (Durable Objects, Upstash) live in services/rate-limit/.
 */
import { AppError } from './errors';

export interface RateRule {
  limit: number;
  windowSeconds: number;
}

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** When the window ends, in epoch milliseconds. */
  resetAt: number;
}

export interface RateLimiter {
  /** Counts one request against `key` and says whether it is within the rule. */
  limit(key: string, rule: RateRule): Promise<RateDecision>;
  /** Says whether one more request would be allowed, without counting it. */
  peek(key: string, rule: RateRule): Promise<RateDecision>;
}

/** Seconds until the window resets, at least 1 so clients never retry in a tight loop. */
export function secondsUntilReset(decision: RateDecision, now = Date.now()): number {
  return Math.max(1, Math.ceil((decision.resetAt - now) / 1000));
}

/** 429 with Retry-After and the IETF RateLimit-* headers. */
export function tooManyRequests(decision: RateDecision): AppError {
  const reset = String(secondsUntilReset(decision));
  return new AppError(429, 'rate_limited', 'Too many requests; slow down.', {
    headers: {
      'Retry-After': reset,
      'RateLimit-Limit': String(decision.limit),
      'RateLimit-Remaining': String(Math.max(0, decision.remaining)),
      'RateLimit-Reset': reset,
    },
  });
}
