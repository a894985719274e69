/**
 * The rate limiter interface every limit goes through. The in-process implementation below counts
 * per isolate only; the edge-security issue puts Durable Object and Upstash backends behind it.
 */

export interface RateRule {
  limit: number;
  windowSeconds: number;
}

export interface RateDecision {
  allowed: boolean;
  remaining: number;
  retryAfterSeconds: number;
}

export interface RateLimiter {
  /** Counts one request against `key` and says whether it is within the rule. */
  hit(key: string, rule: RateRule): Promise<RateDecision>;
  /** Says whether `key` is already over the rule, without counting. */
  peek(key: string, rule: RateRule): Promise<RateDecision>;
}

interface Window {
  startedAt: number;
  count: number;
}

/** Fixed windows in a Map, pruned as it grows. */
export class InProcessRateLimiter implements RateLimiter {
  readonly #windows = new Map<string, Window>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async hit(key: string, rule: RateRule): Promise<RateDecision> {
    const window = this.#current(key, rule);
    window.count += 1;
    return this.#decide(window, rule);
  }

  async peek(key: string, rule: RateRule): Promise<RateDecision> {
    const window = this.#current(key, rule);
    // Peeking asks "would one more be allowed?".
    return {
      ...this.#decide({ ...window, count: window.count + 1 }, rule),
      remaining: Math.max(0, rule.limit - window.count),
    };
  }

  #current(key: string, rule: RateRule): Window {
    const now = this.#now();
    let window = this.#windows.get(key);
    if (!window || now - window.startedAt >= rule.windowSeconds * 1000) {
      if (this.#windows.size > 10_000) this.#prune(now, rule);
      window = { startedAt: now, count: 0 };
      this.#windows.set(key, window);
    }
    return window;
  }

  #decide(window: Window, rule: RateRule): RateDecision {
    const retryAfterSeconds = Math.max(
      1,
      Math.ceil((window.startedAt + rule.windowSeconds * 1000 - this.#now()) / 1000),
    );
    return {
      allowed: window.count <= rule.limit,
      remaining: Math.max(0, rule.limit - window.count),
      retryAfterSeconds,
    };
  }

  #prune(now: number, rule: RateRule): void {
    for (const [key, window] of this.#windows) {
      if (now - window.startedAt >= rule.windowSeconds * 1000) this.#windows.delete(key);
    }
  }
}
