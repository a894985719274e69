/** The default backend: one RateLimiter Durable Object per key (rule + client), exact under concurrency. */
import type { RateDecision, RateLimiter, RateRule } from '../../lib/rate-limiter';

export class DurableObjectRateLimiter implements RateLimiter {
  readonly #namespace: Env['RATE_LIMITER'];

  constructor(namespace: Env['RATE_LIMITER']) {
    this.#namespace = namespace;
  }

  limit(key: string, rule: RateRule): Promise<RateDecision> {
    return this.#stub(key).check(rule, true);
  }

  peek(key: string, rule: RateRule): Promise<RateDecision> {
    return this.#stub(key).check(rule, false);
  }

  #stub(key: string) {
    return this.#namespace.get(this.#namespace.idFromName(key));
  }
}
