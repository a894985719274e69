/**
 * The Upstash backend: @upstash/ratelimit's sliding window over Upstash Redis REST, shared by every
 * edge location. When Redis errors or is slow the request is allowed and
 * `security.ratelimit.fail_open` is logged: an outage of the limiter must not take the API down.
 * The library rejects on errors, so every call is wrapped here.
 */
import { Ratelimit } from '@upstash/ratelimit';
import { Redis } from '@upstash/redis/cloudflare';
import { log } from '../../lib/log';
import type { RateDecision, RateLimiter, RateRule } from '../../lib/rate-limiter';

export interface UpstashOptions {
  url: string;
  token: string;
  timeoutMs: number;
}

export class UpstashRateLimiter implements RateLimiter {
  readonly #redis: Redis;
  readonly #timeoutMs: number;
  readonly #limiters = new Map<string, Ratelimit>();

  constructor(options: UpstashOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#redis = new Redis({
      url: options.url,
      token: options.token,
      // No retries and a deadline per request: failing open must be quick, not seconds later.
      retry: { retries: 0 },
      signal: () => AbortSignal.timeout(options.timeoutMs),
      enableTelemetry: false,
    });
  }

  limit(key: string, rule: RateRule): Promise<RateDecision> {
    return this.#guard(key, rule, async (limiter) => {
      const result = await limiter.limit(key);
      // The library itself lets a request through when its own timeout fires.
      if (result.reason === 'timeout') throw new Error('ratelimit timed out');
      return { allowed: result.success, limit: result.limit, remaining: result.remaining, resetAt: result.reset };
    });
  }

  peek(key: string, rule: RateRule): Promise<RateDecision> {
    return this.#guard(key, rule, async (limiter) => {
      const { remaining, reset } = await limiter.getRemaining(key);
      return { allowed: remaining > 0, limit: rule.limit, remaining, resetAt: reset };
    });
  }

  async #guard(key: string, rule: RateRule, run: (limiter: Ratelimit) => Promise<RateDecision>): Promise<RateDecision> {
    try {
      return await run(this.#limiterFor(rule));
    } catch (err) {
      log('warn', 'security.ratelimit.fail_open', {
        backend: 'upstash',
        rule: `${rule.limit}/${rule.windowSeconds}`,
        key_kind: key.split(':')[0],
        // Errors may echo the command, whose key names the client: never log it.
        error: String((err as Error).message)
          .split(', command was')[0]
          ?.replaceAll(key, '<key>')
          .slice(0, 200),
      });
      return {
        allowed: true,
        limit: rule.limit,
        remaining: rule.limit,
        resetAt: Date.now() + rule.windowSeconds * 1000,
      };
    }
  }

  #limiterFor(rule: RateRule): Ratelimit {
    const name = `${rule.limit}/${rule.windowSeconds}`;
    let limiter = this.#limiters.get(name);
    if (!limiter) {
      limiter = new Ratelimit({
        redis: this.#redis,
        limiter: Ratelimit.slidingWindow(rule.limit, `${rule.windowSeconds} s`),
        prefix: `mce:ratelimit:${name}`,
        ephemeralCache: false,
        analytics: false,
        timeout: this.#timeoutMs,
      });
      this.#limiters.set(name, limiter);
    }
    return limiter;
  }
}
